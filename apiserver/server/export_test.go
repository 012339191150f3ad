package server

// SetWatchHook makes every Watch call f first (nil removes it).
func SetWatchHook(f func(resource string)) {
	if f == nil {
		watchHook.Store(nil)
		return
	}
	watchHook.Store(&f)
}

// SetSendHook sets (nil: clears) a function run before each watch event is sent.
func SetSendHook(f func(resource string)) {
	if f == nil {
		sendHook.Store(nil)
		return
	}
	sendHook.Store(&f)
}
