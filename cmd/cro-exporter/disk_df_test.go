package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// reservedExt4 makes a 96 MiB ext4 with reserved% of its blocks reserved
// for root (mkfs.ext4 -m), in an image on a tmpfs of its own so that the
// machine's disk is never written, and loop-mounts it; both go when the
// test ends. It holds 8 MiB of user data.
func reservedExt4(t *testing.T, reserved int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts a tmpfs and a loop filesystem")
	}
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		mkfs = "/usr/sbin/mkfs.ext4" // outside root's PATH
	}
	images := mounted(t, "a tmpfs for the image", func(dir string) error {
		return unix.Mount("tmpfs", dir, "tmpfs", 0, "size=100m")
	})
	image := filepath.Join(images, "ext4.img")
	if err := os.WriteFile(image, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(image, 96<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(mkfs, "-q", "-F", "-m", strconv.Itoa(reserved), image).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 (make test installs e2fsprogs): %v\n%s", err, out)
	}
	disk := mounted(t, "a loop ext4", func(dir string) error {
		out, err := exec.Command("mount", "-o", "loop", image, dir).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	if err := os.WriteFile(filepath.Join(disk, "data"), make([]byte, 8<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	unix.Sync()
	return disk
}

// dfUsage is what df prints for the filesystem of path: used / (used +
// avail) from its byte counts, and its Use%.
func dfUsage(t *testing.T, path string) (ratio float64, pcent int) {
	t.Helper()
	out, err := exec.Command("df", "-B1", "--output=used,avail,pcent", path).Output()
	if err != nil {
		t.Fatalf("df %s: %v", path, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	f := strings.Fields(lines[len(lines)-1])
	if len(f) != 3 {
		t.Fatalf("df printed %q", out)
	}
	used, err1 := strconv.ParseFloat(f[0], 64)
	avail, err2 := strconv.ParseFloat(f[1], 64)
	pcent, err3 := strconv.Atoi(strings.TrimSuffix(f[2], "%"))
	if err1 != nil || err2 != nil || err3 != nil {
		t.Fatalf("df printed %q", out)
	}
	return used / (used + avail), pcent
}

func TestDiskUsageIsWhatDfPrintsOnAFilesystemWithReservedBlocks(t *testing.T) {
	skipShort(t, "mounts an ext4 loop filesystem, as root")
	for _, reserved := range []int{0, 5, 20} {
		t.Run(fmt.Sprintf("%d%% reserved", reserved), func(t *testing.T) {
			disk := reservedExt4(t, reserved)
			body := start(t, "--disk.path="+disk, "--interval=1s").metrics(t)
			got := value(body, `cro_usage_ratio{resource="disk"}`)
			want, pcent := dfUsage(t, disk)
			if math.Abs(got-want) > 0.005 {
				t.Errorf("cro_usage_ratio{resource=\"disk\"} = %.4f, df says %.4f (Use%% %d)", got, want, pcent)
			}
			// df rounds Use% up.
			if int(math.Ceil(got*100-1e-9)) != pcent {
				t.Errorf("cro_usage_ratio{resource=\"disk\"} = %.4f, df's Use%% is %d", got, pcent)
			}
		})
	}
}

func TestADiskHeldAtATargetShowsItInDf(t *testing.T) {
	h := newHost(t)
	h.disk = reservedExt4(t, 20)
	e := h.start("--target.cpu=0", "--target.memory=0", "--target.disk=0.40", "--window=1m")
	var last string
	waitFor(t, 20*time.Second, "df shows the disk held at 0.40 and agrees with the exporter", func() (bool, string) {
		before := value(e.metrics(t), `cro_usage_ratio{resource="disk"}`)
		df, pcent := dfUsage(t, h.disk)
		time.Sleep(1100 * time.Millisecond) // a tick: the fill may have moved after the sample
		after := value(e.metrics(t), `cro_usage_ratio{resource="disk"}`)
		last = fmt.Sprintf("exported %.4f then %.4f, df %.4f (Use%% %d)", before, after, df, pcent)
		return df >= 0.40 && math.Abs(before-after) < 0.001 && math.Abs(after-df) <= 0.005, last
	})
	t.Log(last)
}
