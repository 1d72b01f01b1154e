package holder

// memoryChunks splits total into full chunks and a remainder, largest first.
func memoryChunks(total, chunk int64) []int64 {
	var sizes []int64
	for ; total >= chunk; total -= chunk {
		sizes = append(sizes, chunk)
	}
	if total > 0 {
		sizes = append(sizes, total)
	}
	return sizes
}

// reconcileChunks matches the sizes of the running holders (in start order)
// to the sizes wanted: it returns the indexes of the holders to stop and the
// sizes to start. Each size wanted keeps the oldest unmatched holder of that
// size. The indexes to stop are highest first.
func reconcileChunks(have, want []int64) (stop []int, start []int64) {
	kept := make([]bool, len(have))
	for _, size := range want {
		found := false
		for i, h := range have {
			if !kept[i] && h == size {
				kept[i], found = true, true
				break
			}
		}
		if !found {
			start = append(start, size)
		}
	}
	for i := len(have) - 1; i >= 0; i-- {
		if !kept[i] {
			stop = append(stop, i)
		}
	}
	return stop, start
}
