// C interface of detect.cc: dlib's HOG frontal face detector and shape
// predictor, without the recognition network, for assessing every frame of
// a camera cheaply.
#ifndef BORDERMATCH_DETECT_H
#define BORDERMATCH_DETECT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct facemodel facemodel;
typedef struct facedet facedet;

// facemodel_load loads a dlib shape predictor (68 or 5 points) from
// sp_path. On failure it returns NULL and sets *err (free it with free()).
// A model may be used by several detectors, on several threads at once.
facemodel* facemodel_load(const char* sp_path, char** err);

// facemodel_points is the number of landmarks per face of the model.
int facemodel_points(const facemodel* m);

// facemodel_free frees a model no detector uses any more.
void facemodel_free(facemodel* m);

// facedet_new makes a detector: dlib's HOG frontal face detector, and the
// shape predictor m, which must outlive it. One detector is for one thread
// at a time. On failure it returns NULL and sets *err.
facedet* facedet_new(const facemodel* m, char** err);

// facedet_detect finds faces in a grey image (w x h bytes, rows stride bytes
// apart), upsampled upsample times first, and writes up to max of them:
// boxes (left, top, right, bottom per face), detector scores, and
// landmarks (x, y per point; facedet_points points per face). It returns
// the number of faces written, or -1 with *err set.
int facedet_detect(facedet* d, const uint8_t* grey, int w, int h, int stride, int upsample, int max,
                   int* boxes, double* scores, double* points, char** err);

void facedet_free(facedet* d);

#ifdef __cplusplus
}
#endif

#endif
