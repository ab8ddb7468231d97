// tfjs2dlib writes dlib's face recognition network
// (dlib_face_recognition_resnet_model_v1.dat, the ResNet-29 that go-face
// loads as anet_type) from the same network's TF.js weights, as de-quantised
// by dequant.js.
//
// dlib's affine_ layers expose no parameters to set, so the network is built
// with bn_con in their place, filled, and converted (anet_type net = bn_net),
// which is how dlib itself turns a trained network into its inference form.
//
// usage: tfjs2dlib WEIGHTS (reads WEIGHTS.txt and WEIGHTS.f32) OUT.dat
//        tfjs2dlib --describe MODEL.dat CHIP.png   (prints the descriptor of a 150x150 chip)
#include <dlib/dnn.h>

#include "dlibnet.h"
#include <dlib/image_io.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

using namespace dlib;

// The network, defined once for this program and the templates/face package.
using bordermatch::anet_type;
using bordermatch::bn_net_type;

// One learnable layer, in input-to-output order.
struct slot {
    char kind;  // 'c' conv, 'b' batch norm, 'f' fully connected
    tensor* params;
    long k, nr, nc, in;  // filters/outputs, kernel rows, kernel cols, input channels
};

struct collect {
    std::vector<slot>* out;
    template <long nf, long nr, long nc, int sy, int sx, int py, int px>
    void operator()(con_<nf, nr, nc, sy, sx, py, px>& l) {
        long in = (l.get_layer_params().size() - nf) / (nf * nr * nc);  // params = filters, then biases
        out->push_back({'c', &l.get_layer_params(), nf, nr, nc, in});
    }
    template <layer_mode m>
    void operator()(bn_<m>& l) {
        out->push_back({'b', &l.get_layer_params(), (long)l.get_layer_params().size() / 2, 0, 0, 0});
    }
    template <unsigned long n, fc_bias_mode b>
    void operator()(fc_<n, b>& l) {
        out->push_back({'f', &l.get_layer_params(), (long)n, 0, 0, (long)(l.get_layer_params().size() / n)});
    }
    template <typename T>
    void operator()(T&) {}
};

struct tensor_file {
    std::string name;
    std::vector<long> shape;
    std::vector<float> v;
};

static std::vector<tensor_file> read_weights(const std::string& base) {
    std::ifstream txt(base + ".txt");
    std::ifstream bin(base + ".f32", std::ios::binary);
    if (!txt || !bin) throw std::runtime_error("cannot open " + base + ".txt/.f32");
    std::vector<tensor_file> ts;
    std::string line;
    while (std::getline(txt, line)) {
        if (line.empty()) continue;
        std::istringstream ss(line);
        tensor_file t;
        ss >> t.name;
        long d, n = 1;
        while (ss >> d) { t.shape.push_back(d); n *= d; }
        t.v.resize(n);
        bin.read(reinterpret_cast<char*>(t.v.data()), n * sizeof(float));
        if (!bin) throw std::runtime_error("weights file ends inside " + t.name);
        ts.push_back(std::move(t));
    }
    if (bin.peek() != EOF) throw std::runtime_error("weights file has bytes past the last tensor");
    return ts;
}

static void fail(const std::string& msg) { throw std::runtime_error(msg); }

int convert(const std::string& weights, const std::string& out) {
    std::vector<tensor_file> ts = read_weights(weights);

    bn_net_type bn_net;
    // A forward pass allocates every layer's parameters.
    matrix<rgb_pixel> dummy(150, 150);
    assign_all_pixels(dummy, rgb_pixel(128, 128, 128));
    bn_net(dummy);

    std::vector<slot> slots;
    visit_computational_layers(bn_net, collect{&slots});
    // visit_computational_layers goes from the output towards the input.
    std::reverse(slots.begin(), slots.end());

    size_t learnable = 0;
    for (auto& s : slots) learnable += s.params->size();
    std::cerr << "tfjs2dlib: " << slots.size() << " learnable layers, " << learnable << " weights\n";
    if (learnable != 5614592) fail("the bn_con network should have 5,614,592 learnable weights");

    // The TF.js units in input-to-output order, each one convolution and
    // one scale (batch norm) layer: the 7x7 stem, then conv1 and conv2 of
    // every residual block, as dlib's network stacks them.
    std::vector<std::string> units = {"conv32_down"};
    for (const char* b : {"conv32_1", "conv32_2", "conv32_3", "conv64_down", "conv64_1", "conv64_2", "conv64_3",
                          "conv128_down", "conv128_1", "conv128_2", "conv256_down", "conv256_1", "conv256_2",
                          "conv256_down_out"}) {
        units.push_back(std::string(b) + "/conv1");
        units.push_back(std::string(b) + "/conv2");
    }
    size_t unit = 0;  // the unit the current con/bn pair belongs to

    size_t ti = 0;
    auto next = [&](const std::string& name, size_t n) -> const tensor_file& {
        if (ti >= ts.size()) fail("ran out of tensors looking for " + name);
        const tensor_file& t = ts[ti++];
        if (t.name != name) fail("expected tensor " + name + ", got " + t.name);
        if (t.v.size() != n)
            fail(t.name + ": " + std::to_string(t.v.size()) + " values, the layer wants " + std::to_string(n));
        return t;
    };
    // bn_ turns into affine with gamma / sqrt(running_variance + eps), and
    // running_variance is 1 after setup: pre-scale gamma so the affine layer
    // gets exactly the TF.js scale.
    const float bn_fix = std::sqrt(1.0 + DEFAULT_BATCH_NORM_EPS);

    for (size_t i = 0; i < slots.size(); i++) {
        slot& s = slots[i];
        float* p = s.params->host();
        if (s.kind != 'f' && unit >= units.size()) fail("the network has more layers than the TF.js model");
        if (s.kind == 'c') {
            const tensor_file& f = next(units[unit] + "/conv/filters", (size_t)s.k * s.in * s.nr * s.nc);
            if (f.shape != std::vector<long>{s.nr, s.nc, s.in, s.k}) fail(f.name + ": shape does not match the layer");
            // TF.js: [row][col][in][out]; dlib: [out][in][row][col], then the biases.
            for (long o = 0; o < s.k; o++)
                for (long c = 0; c < s.in; c++)
                    for (long r = 0; r < s.nr; r++)
                        for (long q = 0; q < s.nc; q++)
                            p[((o * s.in + c) * s.nr + r) * s.nc + q] = f.v[((r * s.nc + q) * s.in + c) * s.k + o];
            const tensor_file& b = next(units[unit] + "/conv/bias", s.k);
            std::copy(b.v.begin(), b.v.end(), p + s.k * s.in * s.nr * s.nc);
        } else if (s.kind == 'b') {
            const tensor_file& g = next(units[unit] + "/scale/weights", s.k);
            const tensor_file& b = next(units[unit] + "/scale/biases", s.k);
            unit++;
            for (long j = 0; j < s.k; j++) {
                p[j] = g.v[j] * bn_fix;
                p[s.k + j] = b.v[j];
            }
        } else {
            // TF.js [in][out] and dlib's fc params (in rows, out columns) agree.
            if (unit != units.size()) fail("the fully connected layer came before all convolutions were filled");
            const tensor_file& f = next("fc", (size_t)s.in * s.k);
            if (f.shape != std::vector<long>{s.in, s.k}) fail(f.name + ": shape does not match the layer");
            std::copy(f.v.begin(), f.v.end(), p);
        }
    }
    if (ti != ts.size()) fail("unused tensors left, starting with " + ts[ti].name);

    anet_type net = bn_net;
    serialize(out) << net;

    // Self-check, on the file as written: the converted network computes
    // what the filled bn_con network computes (which, given one sample, uses
    // the running statistics), so the gamma correction and the conversion
    // lost nothing. (Checked on a copy read back: dlib serialises a layer's
    // cached output, so running the net before writing it would change the
    // file.)
    anet_type back;
    deserialize(out) >> back;
    matrix<rgb_pixel> probe(150, 150);
    for (long r = 0; r < 150; r++)
        for (long c = 0; c < 150; c++)
            probe(r, c) = rgb_pixel((r * 7 + c * 3) % 256, (r * c) % 256, (r + 2 * c) % 256);
    matrix<float, 0, 1> a = bn_net(probe), b = back(probe);
    double diff = max(abs(a - b)), norm = length(b);
    std::cerr << "tfjs2dlib: self-check: descriptor norm " << norm << ", bn_con vs affine max difference " << diff << "\n";
    if (!(norm > 0.1 && norm < 10) || !(diff < 1e-4)) fail("self-check failed: the converted network does not reproduce the filled one");
    std::cerr << "tfjs2dlib: wrote " << out << "\n";
    return 0;
}

int describe(const std::string& model, const std::string& chip_path) {
    anet_type net;
    deserialize(model) >> net;
    matrix<rgb_pixel> chip;
    load_image(chip, chip_path);
    if (chip.nr() != 150 || chip.nc() != 150) fail("the chip must be 150x150");
    matrix<float, 0, 1> d = net(chip);
    for (long i = 0; i < d.size(); i++) std::printf(i ? " %.7g" : "%.7g", d(i));
    std::printf("\n");
    return 0;
}

int main(int argc, char** argv) {
    try {
        if (argc == 4 && std::string(argv[1]) == "--describe") return describe(argv[2], argv[3]);
        if (argc == 3) return convert(argv[1], argv[2]);
        std::cerr << "usage: tfjs2dlib WEIGHTS OUT.dat | tfjs2dlib --describe MODEL.dat CHIP.png\n";
        return 2;
    } catch (std::exception& e) {
        std::cerr << "tfjs2dlib: " << e.what() << "\n";
        return 1;
    }
}
