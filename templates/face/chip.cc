// dlib's face recognition network (go-face's anet_type, dlib's
// dnn_face_recognition_ex.cpp) applied directly to a 150x150 face chip.
#include <dlib/dnn.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "chip.h"
#include "dlibnet.h"

namespace {

using namespace dlib;

using bordermatch::anet_type;

// Collects the convolutions' parameter tensors, from the output towards the
// input.
struct convs {
    std::vector<std::pair<tensor*, size_t>>* out;  // params, number of filter weights
    template <long nf, long nr, long nc, int sy, int sx, int py, int px>
    void operator()(con_<nf, nr, nc, sy, sx, py, px>& l) {
        out->push_back({&l.get_layer_params(), l.get_layer_params().size() - nf});
    }
    template <typename T>
    void operator()(T&) {}
};

char* dup(const char* s) { return strdup(s); }

}  // namespace

struct chipnet {
    anet_type net;
};

extern "C" chipnet* chipnet_new(const char* path, int tfjs_input_scale, char** err) {
    try {
        chipnet* n = new chipnet;
        try {
            deserialize(path) >> n->net;
        } catch (...) {
            delete n;
            throw;
        }
        if (tfjs_input_scale) {
            std::vector<std::pair<tensor*, size_t>> cs;
            visit_computational_layers(n->net, convs{&cs});
            if (cs.empty()) {
                delete n;
                *err = dup("no convolution in the network");
                return nullptr;
            }
            float* p = cs.back().first->host();
            for (size_t i = 0; i < cs.back().second; i++) p[i] *= 256.0f / 255.0f;
        }
        return n;
    } catch (std::exception& e) {
        *err = dup(e.what());
    } catch (...) {
        *err = dup("unknown error");
    }
    return nullptr;
}

extern "C" int chipnet_describe(chipnet* n, const uint8_t* rgb, float* out, char** err) {
    try {
        matrix<rgb_pixel> chip(150, 150);
        for (long r = 0; r < 150; r++)
            for (long c = 0; c < 150; c++) {
                const uint8_t* p = rgb + (r * 150 + c) * 3;
                chip(r, c) = rgb_pixel(p[0], p[1], p[2]);
            }
        matrix<float, 0, 1> d = n->net(chip);
        if (d.size() != 128) {
            *err = dup("the network did not give 128 values");
            return -1;
        }
        std::memcpy(out, &d(0), 128 * sizeof(float));
        return 0;
    } catch (std::exception& e) {
        *err = dup(e.what());
    } catch (...) {
        *err = dup("unknown error");
    }
    return -1;
}

extern "C" void chipnet_free(chipnet* n) { delete n; }

extern "C" int dlibchip_cut(const uint8_t* rgb, int w, int h, const double* points, uint8_t* out, char** err) {
    try {
        matrix<rgb_pixel> img(h, w);
        for (long r = 0; r < h; r++)
            for (long c = 0; c < w; c++) {
                const uint8_t* p = rgb + (r * w + c) * 3;
                img(r, c) = rgb_pixel(p[0], p[1], p[2]);
            }
        std::vector<point> parts(68);
        for (int i = 0; i < 68; i++) parts[i] = point(long(points[2 * i] + 0.5), long(points[2 * i + 1] + 0.5));
        full_object_detection shape(get_rect(img), parts);
        matrix<rgb_pixel> chip;
        extract_image_chip(img, get_face_chip_details(shape, 150, 0.25), chip);
        for (long y = 0; y < 150; y++)
            for (long x = 0; x < 150; x++) {
                uint8_t* p = out + (y * 150 + x) * 3;
                p[0] = chip(y, x).red;
                p[1] = chip(y, x).green;
                p[2] = chip(y, x).blue;
            }
        return 0;
    } catch (std::exception& e) {
        *err = dup(e.what());
    } catch (...) {
        *err = dup("unknown error");
    }
    return -1;
}
