//go:build amd64 && !noasm

#include "textflag.h"

// func dotBlocks1VNNI(codes *byte, nblocks, chunks int, probe *int8, out *int32)
// chunks is a multiple of 4. Four accumulators break the dependency chain
// of VPDPBUSD (several cycles of latency) over a block's chunks.
TEXT ·dotBlocks1VNNI(SB), NOSPLIT, $0-40
	MOVQ codes+0(FP), SI
	MOVQ nblocks+8(FP), CX
	MOVQ chunks+16(FP), DX
	MOVQ probe+24(FP), BX
	MOVQ out+32(FP), DI

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
	ADDQ $64, DI
	DECQ CX
	JNZ  block1
	VZEROUPPER
	RET

// func dotBlocks8VNNI(codes *byte, nblocks, chunks int, group *int8, out *int32)
// Eight probes, interleaved by chunk: each 64-byte load of the gallery
// feeds eight VPDPBUSD, one per probe accumulator.
TEXT ·dotBlocks8VNNI(SB), NOSPLIT, $0-40
	MOVQ codes+0(FP), SI
	MOVQ nblocks+8(FP), CX
	MOVQ chunks+16(FP), DX
	MOVQ group+24(FP), BX
	MOVQ out+32(FP), DI

block8:
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	MOVQ BX, R8
	MOVQ DX, R9

chunk8:
	VMOVDQU64 (SI), Z8
	VPDPBUSD.BCST (R8), Z8, Z0
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

	VMOVDQU32 Z0, (DI)
	VMOVDQU32 Z1, 64(DI)
	VMOVDQU32 Z2, 128(DI)
	VMOVDQU32 Z3, 192(DI)
	VMOVDQU32 Z4, 256(DI)
	VMOVDQU32 Z5, 320(DI)
	VMOVDQU32 Z6, 384(DI)
	VMOVDQU32 Z7, 448(DI)
	ADDQ $512, DI
	DECQ CX
	JNZ  block8
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
