//go:build amd64 && !noasm

#include "textflag.h"

// BOUND is the bound test after each block, the same for every kernel: w =
// sum-off (exact, in int32), converted to float32 (exact: |w| < 2^24),
// times b, plus c, times the row's scale a, compared with t (probeParams);
// each operation rounds as Go's float32 operations do, so
// probeParams.passes gives the same bits. VCMPPS predicate 0x1d is GE_OQ.
//
// It tests the 16 sums in sum against probe lane p of the probeParams at
// R10 (off, b, c and t: four arrays of eight float32/int32, at 0, 32, 64
// and 96), with the rows' scales in scale, and stores the 16-bit mask at
// m(R11). Z18 and K1 are scratch.
#define BOUND(sum, scale, p, m) \
	VPSUBD.BCST 4*p(R10), sum, Z18; \
	VCVTDQ2PS Z18, Z18; \
	VMULPS.BCST 32+4*p(R10), Z18, Z18; \
	VADDPS.BCST 64+4*p(R10), Z18, Z18; \
	VMULPS scale, Z18, Z18; \
	VCMPPS.BCST $0x1d, 96+4*p(R10), Z18, K1; \
	KMOVW K1, m(R11)

// BOUND8 is BOUND for the eight probes of a group against one block: probe
// p's sums in sp, its mask at m+2*p(R11).
#define BOUND8(s0, s1, s2, s3, s4, s5, s6, s7, scale, m) \
	BOUND(s0, scale, 0, m); \
	BOUND(s1, scale, 1, m+2); \
	BOUND(s2, scale, 2, m+4); \
	BOUND(s3, scale, 3, m+6); \
	BOUND(s4, scale, 4, m+8); \
	BOUND(s5, scale, 5, m+10); \
	BOUND(s6, scale, 6, m+12); \
	BOUND(s7, scale, 7, m+14)

// ZERO8 clears eight accumulators.
#define ZERO8(z0, z1, z2, z3, z4, z5, z6, z7) \
	VPXORD z0, z0, z0; \
	VPXORD z1, z1, z1; \
	VPXORD z2, z2, z2; \
	VPXORD z3, z3, z3; \
	VPXORD z4, z4, z4; \
	VPXORD z5, z5, z5; \
	VPXORD z6, z6, z6; \
	VPXORD z7, z7, z7

// STORE8 stores eight blocks of 16 sums (one block's, for the eight probes
// of a group) at off(DI).
#define STORE8(z0, z1, z2, z3, z4, z5, z6, z7, off) \
	VMOVDQU32 z0, off(DI); \
	VMOVDQU32 z1, off+64(DI); \
	VMOVDQU32 z2, off+128(DI); \
	VMOVDQU32 z3, off+192(DI); \
	VMOVDQU32 z4, off+256(DI); \
	VMOVDQU32 z5, off+320(DI); \
	VMOVDQU32 z6, off+384(DI); \
	VMOVDQU32 z7, off+448(DI)

// DOT2 adds the products of the four probe bytes at o(R8) with one chunk of
// each block of a pair (Z16, Z17) to the accumulators a (first block) and b
// (second).
#define DOT2(o, a, b) \
	VPDPBUSD.BCST o(R8), Z16, a; \
	VPDPBUSD.BCST o(R8), Z17, b

// func dotBlocks1VNNI(codes *byte, nblocks, chunks int, probe *int8, scales *float32, prm *probeParams, out *int32, masks *uint16)
// chunks is a multiple of 4. Four accumulators break the dependency chain
// of VPDPBUSD (several cycles of latency) over a block's chunks.
TEXT ·dotBlocks1VNNI(SB), NOSPLIT, $0-64
	MOVQ codes+0(FP), SI
	MOVQ nblocks+8(FP), CX
	MOVQ chunks+16(FP), DX
	MOVQ probe+24(FP), BX
	MOVQ scales+32(FP), R14
	MOVQ prm+40(FP), R10
	MOVQ out+48(FP), DI
	MOVQ masks+56(FP), R11

block1:
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	MOVQ BX, R8
	MOVQ DX, R9

chunk1:
	VMOVDQU64 (SI), Z4
	VMOVDQU64 64(SI), Z5
	VMOVDQU64 128(SI), Z6
	VMOVDQU64 192(SI), Z7
	VPDPBUSD.BCST (R8), Z4, Z0
	VPDPBUSD.BCST 4(R8), Z5, Z1
	VPDPBUSD.BCST 8(R8), Z6, Z2
	VPDPBUSD.BCST 12(R8), Z7, Z3
	ADDQ $256, SI
	ADDQ $16, R8
	SUBQ $4, R9
	JNZ  chunk1

	VPADDD Z1, Z0, Z0
	VPADDD Z3, Z2, Z2
	VPADDD Z2, Z0, Z0
	VMOVDQU32 Z0, (DI)
	VMOVUPS (R14), Z16
	BOUND(Z0, Z16, 0, 0)
	ADDQ $64, DI
	ADDQ $64, R14
	ADDQ $2, R11
	DECQ CX
	JNZ  block1
	VZEROUPPER
	RET

// func dotBlocks8VNNI(codes *byte, nblocks, chunks int, group *int8, scales *float32, prm *probeParams, out *int32, masks *uint16)
// Eight probes, interleaved by chunk, against two blocks at a time: per
// chunk, two 64-byte loads of the gallery feed sixteen VPDPBUSD, each
// broadcasting four probe bytes from memory, into sixteen accumulators:
// enough independent chains to cover VPDPBUSD's latency on two ports.
// (Broadcasting the probe bytes into registers first saves loads but
// measured slower.) An odd last block goes through the one-block loop.
TEXT ·dotBlocks8VNNI(SB), NOSPLIT, $0-64
	MOVQ codes+0(FP), SI
	MOVQ nblocks+8(FP), CX
	MOVQ chunks+16(FP), DX
	MOVQ group+24(FP), BX
	MOVQ scales+32(FP), R14
	MOVQ prm+40(FP), R10
	MOVQ out+48(FP), DI
	MOVQ masks+56(FP), R11
	MOVQ DX, R12
	SHLQ $6, R12 // bytes in a block

	CMPQ CX, $2
	JLT  single8

pair8:
	ZERO8(Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7)
	ZERO8(Z8, Z9, Z10, Z11, Z12, Z13, Z14, Z15)
	MOVQ BX, R8
	MOVQ DX, R9
	LEAQ (SI)(R12*1), R13

chunkp:
	VMOVDQU64 (SI), Z16
	VMOVDQU64 (R13), Z17
	DOT2(0, Z0, Z8)
	DOT2(4, Z1, Z9)
	DOT2(8, Z2, Z10)
	DOT2(12, Z3, Z11)
	DOT2(16, Z4, Z12)
	DOT2(20, Z5, Z13)
	DOT2(24, Z6, Z14)
	DOT2(28, Z7, Z15)
	ADDQ $64, SI
	ADDQ $64, R13
	ADDQ $32, R8
	DECQ R9
	JNZ  chunkp

	STORE8(Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, 0)
	STORE8(Z8, Z9, Z10, Z11, Z12, Z13, Z14, Z15, 512)
	VMOVUPS (R14), Z16
	VMOVUPS 64(R14), Z17
	BOUND8(Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z16, 0)
	BOUND8(Z8, Z9, Z10, Z11, Z12, Z13, Z14, Z15, Z17, 16)
	MOVQ R13, SI // past the pair's second block
	ADDQ $1024, DI
	ADDQ $128, R14
	ADDQ $32, R11
	SUBQ $2, CX
	CMPQ CX, $2
	JGE  pair8

single8:
	TESTQ CX, CX
	JZ    done8
	ZERO8(Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7)
	MOVQ BX, R8
	MOVQ DX, R9

chunk8:
	VMOVDQU64 (SI), Z8
	VPDPBUSD.BCST 0(R8), Z8, Z0
	VPDPBUSD.BCST 4(R8), Z8, Z1
	VPDPBUSD.BCST 8(R8), Z8, Z2
	VPDPBUSD.BCST 12(R8), Z8, Z3
	VPDPBUSD.BCST 16(R8), Z8, Z4
	VPDPBUSD.BCST 20(R8), Z8, Z5
	VPDPBUSD.BCST 24(R8), Z8, Z6
	VPDPBUSD.BCST 28(R8), Z8, Z7
	ADDQ $64, SI
	ADDQ $32, R8
	DECQ R9
	JNZ  chunk8

	STORE8(Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, 0)
	VMOVUPS (R14), Z16
	BOUND8(Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z16, 0)

done8:
	VZEROUPPER
	RET

// func dotBlocks1AVX2(codes *byte, nblocks, chunks int, probe *int16, out *int32)
// No VNNI: the codes are widened to 16 bits (VPMOVZXBW) and multiplied by
// the widened probe with VPMADDWD, exact (VPMADDUBSW would saturate). Each
// accumulator holds two partial sums per row, added pairwise at the end.
TEXT ·dotBlocks1AVX2(SB), NOSPLIT, $0-40
	MOVQ codes+0(FP), SI
	MOVQ nblocks+8(FP), CX
	MOVQ chunks+16(FP), DX
	MOVQ probe+24(FP), BX
	MOVQ out+32(FP), DI

blocka:
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	MOVQ BX, R8
	MOVQ DX, R9

chunka:
	VPBROADCASTQ (R8), Y4
	VPMOVZXBW (SI), Y5
	VPMOVZXBW 16(SI), Y6
	VPMOVZXBW 32(SI), Y7
	VPMOVZXBW 48(SI), Y8
	VPMADDWD Y4, Y5, Y5
	VPMADDWD Y4, Y6, Y6
	VPMADDWD Y4, Y7, Y7
	VPMADDWD Y4, Y8, Y8
	VPADDD Y5, Y0, Y0
	VPADDD Y6, Y1, Y1
	VPADDD Y7, Y2, Y2
	VPADDD Y8, Y3, Y3
	ADDQ $64, SI
	ADDQ $8, R8
	DECQ R9
	JNZ  chunka

	// Y0 = rows 0-3 as [r0a r0b r1a r1b | r2a r2b r3a r3b], Y1 rows 4-7:
	// VPHADDD gives [r0 r1 r4 r5 | r2 r3 r6 r7], VPERMQ puts them in order.
	VPHADDD Y1, Y0, Y0
	VPERMQ  $0xD8, Y0, Y0
	VPHADDD Y3, Y2, Y2
	VPERMQ  $0xD8, Y2, Y2
	VMOVDQU Y0, (DI)
	VMOVDQU Y2, 32(DI)
	ADDQ $64, DI
	DECQ CX
	JNZ  blocka
	VZEROUPPER
	RET
