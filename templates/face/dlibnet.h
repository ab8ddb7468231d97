// dlib's face recognition network, ResNet-29 (dlib_face_recognition_resnet_model_v1.dat):
// the anet_type that go-face's facerec.cc and dlib's dnn_face_recognition_ex.cpp spell out,
// here with the normalisation layer as a parameter. arch<affine>::net is the network as
// serialised and run; arch<bn_con>::net is the same network with batch-norm layers, which
// expose their scale and shift as parameters (models/tfjs2dlib.cc fills those and converts).
// The single definition of the architecture for templates/chip.cc and models/tfjs2dlib.cc.
#pragma once

#include <dlib/dnn.h>

namespace bordermatch {

using namespace dlib;

template <template <int, template <typename> class, int, typename> class block, int N,
          template <typename> class BN, typename SUBNET>
using residual = add_prev1<block<N, BN, 1, tag1<SUBNET>>>;

template <template <int, template <typename> class, int, typename> class block, int N,
          template <typename> class BN, typename SUBNET>
using residual_down = add_prev2<avg_pool<2, 2, 2, 2, skip1<tag2<block<N, BN, 2, tag1<SUBNET>>>>>>;

template <int N, template <typename> class BN, int stride, typename SUBNET>
using block = BN<con<N, 3, 3, 1, 1, relu<BN<con<N, 3, 3, stride, stride, SUBNET>>>>>;

template <template <typename> class BN>
struct arch {
    template <int N, typename SUBNET> using res = relu<residual<block, N, BN, SUBNET>>;
    template <int N, typename SUBNET> using res_down = relu<residual_down<block, N, BN, SUBNET>>;
    template <typename SUBNET> using level0 = res_down<256, SUBNET>;
    template <typename SUBNET> using level1 = res<256, res<256, res_down<256, SUBNET>>>;
    template <typename SUBNET> using level2 = res<128, res<128, res_down<128, SUBNET>>>;
    template <typename SUBNET> using level3 = res<64, res<64, res<64, res_down<64, SUBNET>>>>;
    template <typename SUBNET> using level4 = res<32, res<32, res<32, SUBNET>>>;
    using net = loss_metric<fc_no_bias<128, avg_pool_everything<
        level0<level1<level2<level3<level4<
        max_pool<3, 3, 2, 2, relu<BN<con<32, 7, 7, 2, 2,
        input_rgb_image_sized<150>>>>>>>>>>>>>;
};

using anet_type = arch<affine>::net;
using bn_net_type = arch<bn_con>::net;

}  // namespace bordermatch
