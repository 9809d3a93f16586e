package raft

// A tail window is a slice that grows at its end and loses elements at its
// head, such as a log whose old entries are trimmed as new ones arrive. It
// is kept as win, a window of the array arr that ends where arr ends
// (cap(win) counts to the end of arr), so that the room a trimmed head
// leaves in front of win can be used again. Plain reslicing cannot do that:
// win[n:] loses the n slots for good, and a log trimmed as fast as it grows
// would keep moving to new arrays. Slots of arr outside win hold the zero
// value, so that a window of pointers pins nothing it dropped.

// reserveTail returns the window and its array with room for extra more
// elements at the window's end. When the window fits in at most half of its
// array with them, it slides down to the array's start; otherwise it moves
// to a new array twice that size. Either way at least half of the array is
// free afterwards, so each move's cost spreads over as many appends as it
// moves. win must be a window of arr as above, or empty with arr nil.
func reserveTail[T any](win, arr []T, extra int) ([]T, []T) {
	n := len(win)
	if n+extra <= cap(win) {
		return win, arr
	}
	if n+extra <= cap(arr)/2 {
		off := cap(arr) - cap(win) // where win starts in arr
		arr = arr[:cap(arr)]
		copy(arr, win)
		clear(arr[max(n, off) : off+n]) // the old slots left behind
		return arr[:n], arr
	}
	return moveWindow(win, 2*(n+extra))
}

// moveWindow copies win to the start of a new array of size elements (at
// least len(win), and a floor that spares a small window repeated moves).
func moveWindow[T any](win []T, size int) ([]T, []T) {
	arr := make([]T, max(size, len(win), 16))
	n := copy(arr, win)
	return arr[:n], arr
}

// shrinkWindow moves a window that uses less than an eighth of a large
// array to a smaller one, giving the memory back.
func shrinkWindow[T any](win, arr []T) ([]T, []T) {
	if cap(arr) > 4096 && len(win) < cap(arr)/8 {
		return moveWindow(win, 2*len(win))
	}
	return win, arr
}
