// The C half of the libfprint adapter. libfprint attaches every source and
// async result to GLib's global default main context, so one thread (the
// "loop thread", started by bm_loop_run) owns that context for the life of
// the process, and every libfprint call is made on it: Go hands closures
// over with bm_invoke, and the async operations report back through the
// exported goFprint* functions, still on the loop thread.

#ifndef BORDERMATCH_FPRINT_GLUE_H
#define BORDERMATCH_FPRINT_GLUE_H

#include <stdint.h>
#include <fprint.h>

// How a GError maps onto the Go errors.
enum {
	BM_ERR_OTHER = 0,
	BM_ERR_RETRY,     // FP_DEVICE_RETRY: a bad scan, the finger should be presented again
	BM_ERR_CANCELLED, // G_IO_ERROR_CANCELLED
	BM_ERR_REMOVED,   // FP_DEVICE_ERROR_REMOVED: unplugged
	BM_ERR_BUSY,      // FP_DEVICE_ERROR_BUSY
	BM_ERR_NOT_SUPPORTED,
};

// bm_loop_run takes GLib's default main context, creates the FpContext,
// enumerates the devices, reports through goFprintReady(ready, NULL) (or
// goFprintReady(ready, message) and returns on failure) and then runs the
// main loop for good.
void bm_loop_run(uintptr_t ready);

// bm_invoke runs goFprintRun(h) on the loop thread. Safe from any thread.
void bm_invoke(uintptr_t h);

// Loop thread only.
guint bm_device_count(void);
FpDevice *bm_device_at(guint i);
int bm_device_can_capture(FpDevice *dev);
void bm_open(FpDevice *dev, uintptr_t h);
void bm_close(FpDevice *dev, uintptr_t h);
void bm_capture(FpDevice *dev, GCancellable *cancel, uintptr_t h);
int bm_error_kind(const GError *err);
// bm_device_listed: dev is still in the context's list (not unplugged).
int bm_device_listed(FpDevice *dev);
void bm_unref(gpointer obj);

#endif
