/*
 * bcryptprimitives.dll for Wine 8.0 (Debian 12), which has none: Go 1.22
 * and later look up ProcessPrng in it at start and stop without it. This
 * one exports ProcessPrng alone, answered by advapi32's SystemFunction036
 * (RtlGenRandom), Wine's own random source. Only for running tests under
 * Wine; never shipped. prefix.sh builds it with Debian's mingw-w64:
 *
 *   x86_64-w64-mingw32-gcc -shared -O2 -s -o bcryptprimitives.dll \
 *       processprng.c processprng.def -ladvapi32
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

/*
 * ProcessPrng fills data with len random bytes. Windows' own never fails
 * and always returns TRUE; RtlGenRandom takes a ULONG, so a larger request
 * goes in pieces.
 */
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
	while (len > 0) {
		ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
		if (!SystemFunction036(data, n))
			return FALSE;
		data += n;
		len -= n;
	}
	return TRUE;
}
