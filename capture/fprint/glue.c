#include "glue.h"
#include "_cgo_export.h"

static FpContext *bm_ctx;

void bm_loop_run(uintptr_t ready) {
	GMainLoop *loop;

	// Own the default context before libfprint touches it, and keep it:
	// g_main_loop_run below never returns, so no other thread can ever
	// dispatch libfprint's sources.
	if (!g_main_context_acquire(NULL)) {
		goFprintReady(ready, (char *)"GLib's default main context is owned by another thread");
		return;
	}
	bm_ctx = fp_context_new();
	// Iterates the default context until every USB and virtual device has
	// been probed; the environment (FP_VIRTUAL_IMAGE …) is read here.
	fp_context_enumerate(bm_ctx);
	goFprintReady(ready, NULL);

	loop = g_main_loop_new(NULL, FALSE);
	g_main_loop_run(loop);
	g_main_loop_unref(loop);
}

static gboolean bm_invoke_cb(gpointer data) {
	goFprintRun((uintptr_t)data);
	return G_SOURCE_REMOVE;
}

void bm_invoke(uintptr_t h) {
	// An idle source rather than g_main_context_invoke: invoke may run the
	// function on the calling thread when it can acquire the context.
	GSource *s = g_idle_source_new();
	g_source_set_priority(s, G_PRIORITY_DEFAULT);
	g_source_set_callback(s, bm_invoke_cb, (gpointer)h, NULL);
	g_source_attach(s, NULL);
	g_source_unref(s);
}

guint bm_device_count(void) {
	return fp_context_get_devices(bm_ctx)->len;
}

FpDevice *bm_device_at(guint i) {
	GPtrArray *devs = fp_context_get_devices(bm_ctx);
	if (i >= devs->len)
		return NULL;
	return FP_DEVICE(g_ptr_array_index(devs, i));
}

int bm_device_can_capture(FpDevice *dev) {
	return fp_device_has_feature(dev, FP_DEVICE_FEATURE_CAPTURE);
}

static void bm_open_cb(GObject *src, GAsyncResult *res, gpointer data) {
	GError *err = NULL;
	fp_device_open_finish(FP_DEVICE(src), res, &err);
	goFprintDone((uintptr_t)data, err);
	g_clear_error(&err);
}

void bm_open(FpDevice *dev, uintptr_t h) {
	fp_device_open(dev, NULL, bm_open_cb, (gpointer)h);
}

static void bm_close_cb(GObject *src, GAsyncResult *res, gpointer data) {
	GError *err = NULL;
	fp_device_close_finish(FP_DEVICE(src), res, &err);
	goFprintDone((uintptr_t)data, err);
	g_clear_error(&err);
}

void bm_close(FpDevice *dev, uintptr_t h) {
	fp_device_close(dev, NULL, bm_close_cb, (gpointer)h);
}

static void bm_capture_cb(GObject *src, GAsyncResult *res, gpointer data) {
	GError *err = NULL;
	FpImage *img = fp_device_capture_finish(FP_DEVICE(src), res, &err);
	// Go copies the pixels before returning; both are freed here.
	goFprintCaptured((uintptr_t)data, img, err);
	g_clear_object(&img);
	g_clear_error(&err);
}

void bm_capture(FpDevice *dev, GCancellable *cancel, uintptr_t h) {
	// wait_for_finger: image devices only capture on a finger.
	fp_device_capture(dev, TRUE, cancel, bm_capture_cb, (gpointer)h);
}

int bm_error_kind(const GError *err) {
	if (err->domain == FP_DEVICE_RETRY)
		return BM_ERR_RETRY;
	if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_CANCELLED))
		return BM_ERR_CANCELLED;
	if (g_error_matches(err, FP_DEVICE_ERROR, FP_DEVICE_ERROR_REMOVED))
		return BM_ERR_REMOVED;
	if (g_error_matches(err, FP_DEVICE_ERROR, FP_DEVICE_ERROR_BUSY))
		return BM_ERR_BUSY;
	if (g_error_matches(err, FP_DEVICE_ERROR, FP_DEVICE_ERROR_NOT_SUPPORTED))
		return BM_ERR_NOT_SUPPORTED;
	return BM_ERR_OTHER;
}

int bm_device_listed(FpDevice *dev) {
	GPtrArray *devs = fp_context_get_devices(bm_ctx);
	for (guint i = 0; i < devs->len; i++)
		if (g_ptr_array_index(devs, i) == dev)
			return 1;
	return 0;
}

void bm_unref(gpointer obj) {
	g_object_unref(obj);
}
