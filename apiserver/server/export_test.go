package server

// SetWatchHook makes every Watch call f first (nil removes it).
func SetWatchHook(f func(resource string)) {
	if f == nil {
		watchHook.Store(nil)
		return
	}
	watchHook.Store(&f)
}
