package main

// must is v, or a panic on err: for calls a test's setup cannot fail.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
