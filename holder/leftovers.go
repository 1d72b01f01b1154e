package holder

// cleanup is what cleanLeftovers did.
type cleanup struct {
	stopped   []StoppedHolder
	notes     []string      // processes left alone, and why
	failures  []string      // holders that could not be killed
	survivors []holderEntry // registry entries still running
}
