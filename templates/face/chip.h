// C interface of chip.cc: dlib's face recognition network run directly on a
// 150x150 face chip, without detection or alignment.
#ifndef BORDERMATCH_CHIP_H
#define BORDERMATCH_CHIP_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct chipnet chipnet;

// chipnet_new loads dlib_face_recognition_resnet_model_v1.dat from path. With
// tfjs_input_scale set, it multiplies the first convolution's filters by
// 256/255, which makes the network see its input as TF.js ports do (pixels
// divided by 255 instead of dlib's 256). On failure it returns NULL and sets
// *err (free it with free()).
chipnet* chipnet_new(const char* path, int tfjs_input_scale, char** err);

// chipnet_describe computes the 128-d descriptor of a 150x150 RGB chip
// (rgb: 150*150*3 bytes, row major) into out. It returns 0, or -1 and sets
// *err. Not safe for concurrent use of one chipnet.
int chipnet_describe(chipnet* n, const uint8_t* rgb, float* out, char** err);

void chipnet_free(chipnet* n);

// dlibchip_cut cuts dlib's 150x150 face chip (get_face_chip_details with
// padding 0.25, as the network expects) from an RGB image (w*h*3 bytes),
// given the face's 68 landmarks (x0, y0, x1, y1, ...), into out
// (150*150*3 bytes). It returns 0, or -1 and sets *err.
int dlibchip_cut(const uint8_t* rgb, int w, int h, const double* points, uint8_t* out, char** err);

#ifdef __cplusplus
}
#endif

#endif
