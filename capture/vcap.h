// C interface of vcap.cc: an OpenCV VideoCapture opened with the open-only
// properties gocv 0.31 cannot pass (open and read timeouts of the FFmpeg
// backend), reading into gocv's Mats.
#ifndef BORDERMATCH_VCAP_H
#define BORDERMATCH_VCAP_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vcap vcap;

// vcap_open opens uri (a device path or index, file or URL) with the given
// backend (cv::VideoCaptureAPIs) and, when positive, open and read timeouts
// in milliseconds. It returns NULL and sets *err (free it with free()) when
// the capture does not open.
vcap* vcap_open(const char* uri, int api, int open_timeout_ms, int read_timeout_ms, char** err);

// vcap_read reads the next frame into mat (a cv::Mat*, gocv's Mat.Ptr()).
// It returns 1 with a frame, 0 without one (end, timeout, lost stream), and
// -1 with *err set when OpenCV threw.
int vcap_read(vcap* c, void* mat, char** err);

double vcap_get(vcap* c, int prop);
int vcap_set(vcap* c, int prop, double value);
void vcap_close(vcap* c);

#ifdef __cplusplus
}
#endif

#endif
