//go:build !noasm

#include "textflag.h"

// func streamXorAVX2(p *byte, n int) uint64
// XORs n bytes (a multiple of 128) at p as uint64s: four 32-byte loads per
// iteration, enough to keep a core's load ports ahead of memory.
TEXT ·streamXorAVX2(SB), NOSPLIT, $0-24
	MOVQ p+0(FP), SI
	MOVQ n+8(FP), CX
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3

loop:
	CMPQ CX, $128
	JB   done
	VPXOR (SI), Y0, Y0
	VPXOR 32(SI), Y1, Y1
	VPXOR 64(SI), Y2, Y2
	VPXOR 96(SI), Y3, Y3
	ADDQ  $128, SI
	SUBQ  $128, CX
	JMP   loop

done:
	VPXOR        Y1, Y0, Y0
	VPXOR        Y3, Y2, Y2
	VPXOR        Y2, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPXOR        X1, X0, X0
	MOVQ         X0, AX
	PEXTRQ       $1, X0, BX
	XORQ         BX, AX
	VZEROUPPER
	MOVQ         AX, ret+16(FP)
	RET

// func streamXorAVX512(p *byte, n int) uint64
// The same with 64-byte loads: XORs n bytes (a multiple of 256) at p as
// uint64s, four ZMM loads per iteration.
TEXT ·streamXorAVX512(SB), NOSPLIT, $0-24
	MOVQ   p+0(FP), SI
	MOVQ   n+8(FP), CX
	VPXORQ Z0, Z0, Z0
	VPXORQ Z1, Z1, Z1
	VPXORQ Z2, Z2, Z2
	VPXORQ Z3, Z3, Z3

loop512:
	CMPQ   CX, $256
	JB     done512
	VPXORQ (SI), Z0, Z0
	VPXORQ 64(SI), Z1, Z1
	VPXORQ 128(SI), Z2, Z2
	VPXORQ 192(SI), Z3, Z3
	ADDQ   $256, SI
	SUBQ   $256, CX
	JMP    loop512

done512:
	VPXORQ        Z1, Z0, Z0
	VPXORQ        Z3, Z2, Z2
	VPXORQ        Z2, Z0, Z0
	VEXTRACTI64X4 $1, Z0, Y1
	VPXOR         Y1, Y0, Y0
	VEXTRACTI128  $1, Y0, X1
	VPXOR         X1, X0, X0
	MOVQ          X0, AX
	PEXTRQ        $1, X0, BX
	XORQ          BX, AX
	VZEROUPPER
	MOVQ          AX, ret+16(FP)
	RET
