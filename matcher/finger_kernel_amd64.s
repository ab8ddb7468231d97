//go:build amd64 && !noasm

#include "textflag.h"

// GATE sets K1 to the lanes within the angle gate of the record at R8:
// d = (a − b) & 1023, folded to min(d, 1024 − d) ≤ gate.
#define GATE \
VPSUBQ.BCST 56(R8), Z23, Z0; \
VPANDQ      Z24, Z0, Z0; \
VPSUBQ      Z0, Z25, Z1; \
VPMINUQ     Z1, Z0, Z0; \
VPCMPUQ     $2, Z26, Z0, K1

// COMMON keeps in K1 the lanes with ≥ minCommon valid cells in common
// with the record (whose mask it broadcasts into Z9).
#define COMMON \
VPBROADCASTQ 48(R8), Z9; \
VPANDQ       Z9, Z22, Z1; \
VPOPCNTQ     Z1, Z1; \
VPCMPUQ      $5, Z27, Z1, K1, K1

// COUNT adds slice w's counts, the probe's slice in a, the record's at
// off(R8) = 8*w(R8), to na (Z2), nb (Z3) and both (Z4).
#define COUNT(a, off) \
VPANDQ      Z9, a, Z5; \
VPOPCNTQ    Z5, Z5; \
VPADDQ      Z5, Z2, Z2; \
VPANDQ.BCST off(R8), Z22, Z6; \
VPOPCNTQ    Z6, Z6; \
VPADDQ      Z6, Z3, Z3; \
VPANDQ.BCST off(R8), a, Z7; \
VPOPCNTQ    Z7, Z7; \
VPADDQ      Z7, Z4, Z4

// COUNTS: na = Σ|a∧mb| (Z2), nb = Σ|b∧ma| (Z3), both = Σ|a∧b| (Z4), over
// the six slices: slice 0 starts the sums, COUNT adds the others'.
#define COUNTS \
VPANDQ      Z9, Z16, Z2; \
VPOPCNTQ    Z2, Z2; \
VPANDQ.BCST 0(R8), Z22, Z3; \
VPOPCNTQ    Z3, Z3; \
VPANDQ.BCST 0(R8), Z16, Z4; \
VPOPCNTQ    Z4, Z4; \
COUNT(Z17, 8); \
COUNT(Z18, 16); \
COUNT(Z19, 24); \
COUNT(Z20, 32); \
COUNT(Z21, 40)

// CONSTS loads the constants both kernels keep in registers: Z24 1023,
// Z25 1024, Z26 gate, Z27 minCommon (from the arguments), Y28 1.0.
#define CONSTS \
MOVQ         $1023, AX; \
VPBROADCASTQ AX, Z24; \
MOVQ         $1024, AX; \
VPBROADCASTQ AX, Z25; \
VPBROADCASTQ gate+40(FP), Z26; \
VPBROADCASTQ minCommon+32(FP), Z27; \
MOVL         $0x3f800000, AX; \
VPBROADCASTD AX, Y28

// PROBE loads the block of 8 probe cylinders at DI: slices 0..5 into
// Z16..Z21, the mask into Z22, the angles into Z23.
#define PROBE \
VMOVDQU64 0(DI), Z16; \
VMOVDQU64 64(DI), Z17; \
VMOVDQU64 128(DI), Z18; \
VMOVDQU64 192(DI), Z19; \
VMOVDQU64 256(DI), Z20; \
VMOVDQU64 320(DI), Z21; \
VMOVDQU64 384(DI), Z22; \
VMOVDQU64 448(DI), Z23

// LAMBDA: λ into Y5, K1 narrowed to the lanes with na+nb > 0.
#define LAMBDA \
VPADDQ    Z3, Z2, Z5; \
VPTESTMQ  Z5, Z5, K1, K1; \
VPSUBQ    Z4, Z5, Z5; \
VPSUBQ    Z4, Z5, Z5; \
VCVTQQ2PS Z5, Y5; \
VCVTQQ2PS Z2, Y2; \
VCVTQQ2PS Z3, Y3; \
VSQRTPS   Y5, Y5; \
VSQRTPS   Y2, Y2; \
VSQRTPS   Y3, Y3; \
VADDPS    Y3, Y2, Y2; \
VDIVPS    Y2, Y5, Y5; \
VSUBPS    Y5, Y28, Y5

// func coarseMaxAVX512(cand *uint64, nc int, probe *uint64, nblk int, minCommon, gate uint64, best *float32)
//
// For each block of 8 probe cylinders (one per 64-bit lane; a block is 8
// vectors: slices 0..5, mask, angle) and each gallery record (8 words:
// slices 0..5, mask, angle), the lanes passing both gates get
// λ = 1 − √(na+nb−2·both) / (√na + √nb) and keep their maximum, as
// coarseMaxGo does. Every operation is exact or IEEE-rounded the same way
// as the Go code, so the results agree bit for bit.
//
// Registers: Z16..Z21 probe slices, Z22 probe mask, Z23 probe angles,
// Z24 1023, Z25 1024, Z26 gate, Z27 minCommon, Y28 1.0, Y15 the maxima.
TEXT ·coarseMaxAVX512(SB), NOSPLIT, $0-56
	MOVQ cand+0(FP), SI
	MOVQ nc+8(FP), CX
	MOVQ probe+16(FP), DI
	MOVQ nblk+24(FP), DX
	MOVQ best+48(FP), BX

	CONSTS

block:
	PROBE
	VXORPS Y15, Y15, Y15
	MOVQ   SI, R8
	MOVQ   CX, R9

cand:
	GATE
	KORTESTB K1, K1
	JZ       next
	COMMON
	KORTESTB K1, K1
	JZ       next
	COUNTS
	LAMBDA
	VMAXPS   Y5, Y15, K1, Y15

next:
	ADDQ $64, R8
	DECQ R9
	JNZ  cand

	VMOVUPS Y15, (BX)
	ADDQ    $32, BX
	ADDQ    $512, DI
	DECQ    DX
	JNZ     block

	VZEROUPPER
	RET

// func coarseAllAVX512(cand *uint64, nc int, probe *uint64, nblk int, minCommon, gate uint64, out *float32)
//
// As coarseMaxAVX512, but every (block, record) writes its 8 lanes' λ, 0
// where a gate stops the pair, to out[(block*nc+record)*8 ...].
TEXT ·coarseAllAVX512(SB), NOSPLIT, $0-56
	MOVQ cand+0(FP), SI
	MOVQ nc+8(FP), CX
	MOVQ probe+16(FP), DI
	MOVQ nblk+24(FP), DX
	MOVQ out+48(FP), BX

	CONSTS
	VXORPS Y14, Y14, Y14

allblock:
	PROBE
	MOVQ SI, R8
	MOVQ CX, R9

allcand:
	GATE
	KORTESTB K1, K1
	JZ       allzero
	COMMON
	KORTESTB K1, K1
	JZ       allzero
	COUNTS
	LAMBDA
	VMOVAPS.Z Y5, K1, Y5
	VMOVUPS   Y5, (BX)
	JMP       allnext

allzero:
	VMOVUPS Y14, (BX)

allnext:
	ADDQ $32, BX
	ADDQ $64, R8
	DECQ R9
	JNZ  allcand

	ADDQ $512, DI
	DECQ DX
	JNZ  allblock

	VZEROUPPER
	RET
