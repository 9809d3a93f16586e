#include "textflag.h"

// See snapshot_crc.go for what is computed and why it is the CRC.

// func cpuidLeaf1ECX() uint32
TEXT ·cpuidLeaf1ECX(SB), NOSPLIT, $0-4
	MOVL $1, AX
	XORL CX, CX
	CPUID
	MOVL CX, ret+0(FP)
	RET

// FOLD replaces acc by its two halves each multiplied by the matching
// half of k, XORed together, using tmp.
#define FOLD(acc, k, tmp) \
	MOVO      acc, tmp;   \
	PCLMULQDQ $0x00, k, acc; \
	PCLMULQDQ $0x11, k, tmp; \
	PXOR      tmp, acc

// func crcFold(state uint64, p []byte, k *[4]uint64) (lo, hi uint64)
TEXT ·crcFold(SB), NOSPLIT, $0-56
	MOVQ state+0(FP), AX
	MOVQ p_base+8(FP), SI
	MOVQ p_len+16(FP), CX
	MOVQ k+32(FP), DX

	// The first block starts the four lanes; the state joins lane 0.
	MOVOU 0(SI), X0
	MOVOU 16(SI), X1
	MOVOU 32(SI), X2
	MOVOU 48(SI), X3
	MOVQ  AX, X4
	PXOR  X4, X0
	ADDQ  $64, SI
	SUBQ  $64, CX

	// Multipliers moving a lane 512 bits on.
	MOVOU 0(DX), X5

loop:
	CMPQ CX, $64
	JB   combine
	FOLD(X0, X5, X6)
	FOLD(X1, X5, X7)
	FOLD(X2, X5, X8)
	FOLD(X3, X5, X9)
	MOVOU 0(SI), X6
	MOVOU 16(SI), X7
	MOVOU 32(SI), X8
	MOVOU 48(SI), X9
	PXOR  X6, X0
	PXOR  X7, X1
	PXOR  X8, X2
	PXOR  X9, X3
	ADDQ  $64, SI
	SUBQ  $64, CX
	JMP   loop

combine:
	// Multipliers moving a lane 128 bits on: lane 0 into lane 1, and so
	// on, leaving the residue in lane 3.
	MOVOU 16(DX), X5
	FOLD(X0, X5, X6)
	PXOR  X0, X1
	FOLD(X1, X5, X6)
	PXOR  X1, X2
	FOLD(X2, X5, X6)
	PXOR  X2, X3

	MOVQ   X3, AX
	MOVQ   AX, lo+40(FP)
	PSRLDQ $8, X3
	MOVQ   X3, AX
	MOVQ   AX, hi+48(FP)
	RET
