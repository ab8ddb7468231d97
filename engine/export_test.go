package engine

// SetRetemplateStopAfter makes the next re-templating run of e stop, as a
// crash would, after n subjects (0: never): the test hook of an
// interrupted job.
func SetRetemplateStopAfter(e *Engine, n int) {
	e.job.mu.Lock()
	e.job.stopAfter = n
	e.job.mu.Unlock()
}
