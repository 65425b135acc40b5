/*
 * The steering program, assembled from struct bpf_insn (docs/STEERING.md has it as pseudo-code).
 * One program per group: the slot count and the policy are immediates, so every loop has a
 * constant bound the verifier can follow (bounded loops: Linux 5.3).
 *
 * Registers: r6 the context (struct sk_reuseport_md), r7 the state (struct fdp__steer_state),
 * r8 the chosen slot, r9 a loop index; r1-r5 scratch, clobbered by every helper call.
 * Stack: [r10-4] the state map's key (0), [r10-8] the socket array's key (the slot),
 * [r10-24, r10-8) the client's address loaded by hash-ip.
 */
#include "steer_prog.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <stddef.h>
#include <string.h>

enum { R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 };

/* Labels: jumps are written to a label and patched once every label is placed. */
enum label {
	L_PASS,
	L_FIND,
	L_FIND_LOOP,
	L_SELECT,
	L_V4,
	L_V6,
	L_MIX,
	L_LC_LOOP,
	L_LC_NEXT,
	L_LC_DONE,
	L_COUNT,
};

struct as {
	struct bpf_insn *v;
	size_t n, max;
	long at[L_COUNT];
	struct fix {
		size_t insn;
		enum label to;
	} fix[64];
	size_t nfix;
	int overflow;
};

static void emit(struct as *a, uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
	if (a->n == a->max) {
		a->overflow = 1;
		return;
	}
	a->v[a->n++] = (struct bpf_insn){
	        .code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm};
}

static void label(struct as *a, enum label l)
{
	a->at[l] = (long)a->n;
}

/* A jump to a label: op is BPF_JA, or BPF_JEQ etc. against an immediate (src < 0) or a register. */
static void jump(struct as *a, uint8_t op, uint8_t dst, int src, int32_t imm, enum label to)
{
	if (a->nfix == sizeof(a->fix) / sizeof(a->fix[0])) {
		a->overflow = 1;
		return;
	}
	a->fix[a->nfix++] = (struct fix){a->n, to};
	if (op == BPF_JA)
		emit(a, BPF_JMP | BPF_JA, 0, 0, 0, 0);
	else if (src < 0)
		emit(a, BPF_JMP | op | BPF_K, dst, 0, 0, imm);
	else
		emit(a, BPF_JMP | op | BPF_X, dst, (uint8_t)src, 0, 0);
}

/* 64-bit and 32-bit ALU operations, with an immediate or a register. */
static void alu64_imm(struct as *a, uint8_t op, uint8_t dst, int32_t imm)
{
	emit(a, BPF_ALU64 | op | BPF_K, dst, 0, 0, imm);
}

static void alu64_reg(struct as *a, uint8_t op, uint8_t dst, uint8_t src)
{
	emit(a, BPF_ALU64 | op | BPF_X, dst, src, 0, 0);
}

static void alu32_imm(struct as *a, uint8_t op, uint8_t dst, int32_t imm)
{
	emit(a, BPF_ALU | op | BPF_K, dst, 0, 0, imm);
}

static void alu32_reg(struct as *a, uint8_t op, uint8_t dst, uint8_t src)
{
	emit(a, BPF_ALU | op | BPF_X, dst, src, 0, 0);
}

/* dst = *(u32 *)(src + off); *(u32 *)(dst + off) = src. */
static void load32(struct as *a, uint8_t dst, uint8_t src, int16_t off)
{
	emit(a, BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0);
}

static void store32(struct as *a, uint8_t dst, int16_t off, uint8_t src)
{
	emit(a, BPF_STX | BPF_MEM | BPF_W, dst, src, off, 0);
}

/* dst = the map of descriptor fd (a 16-byte instruction the kernel rewrites to the map). */
static void load_map(struct as *a, uint8_t dst, int fd)
{
	emit(a, BPF_LD | BPF_DW | BPF_IMM, dst, BPF_PSEUDO_MAP_FD, 0, fd);
	emit(a, 0, 0, 0, 0, 0);
}

static void call(struct as *a, int32_t helper)
{
	emit(a, BPF_JMP | BPF_CALL, 0, 0, 0, helper);
}

/*
 * r1 = (base + r9) % slots, the slot r9 places after the candidate base, and r2 = r7 + 4 * r1.
 * No conditional jump: the remainder and the mask bound r1 for the verifier (the arrays have
 * FDP__STEER_MAX_SLOTS entries), and a jump there would split the loop's state each time round,
 * which the verifier then explores path by path (quadratic in the slots, or worse).
 */
static void wrapped_index(struct as *a, uint8_t base, uint32_t slots)
{
	alu64_reg(a, BPF_MOV, R1, base);
	alu64_reg(a, BPF_ADD, R1, R9);
	alu32_imm(a, BPF_MOD, R1, (int32_t)slots);
	alu32_imm(a, BPF_AND, R1, FDP__STEER_MAX_SLOTS - 1);
	alu64_reg(a, BPF_MOV, R2, R1);
	alu64_imm(a, BPF_LSH, R2, 2);
	alu64_reg(a, BPF_ADD, R2, R7);
}

_Static_assert((FDP__STEER_MAX_SLOTS & (FDP__STEER_MAX_SLOTS - 1)) == 0,
               "the slot mask needs a power of 2");

#define OFF(field) ((int16_t)offsetof(struct fdp__steer_state, field))

int fdp__steer_prog_build(struct bpf_insn *v, size_t max, enum fdp__steer_policy policy,
                          unsigned slots, int state_fd, int sockarray_fd)
{
	struct as a = {.v = v, .max = max};
	int32_t n = (int32_t)slots;

	if (slots == 0 || slots > FDP__STEER_MAX_SLOTS)
		return -EINVAL;
	for (size_t i = 0; i < L_COUNT; i++)
		a.at[i] = -1;

	/* r7 = the state; no state (cannot happen: an array's element 0 exists): the kernel picks. */
	alu64_reg(&a, BPF_MOV, R6, R1);
	emit(&a, BPF_ST | BPF_MEM | BPF_W, R10, 0, -4, 0);
	load_map(&a, R1, state_fd);
	alu64_reg(&a, BPF_MOV, R2, R10);
	alu64_imm(&a, BPF_ADD, R2, -4);
	call(&a, BPF_FUNC_map_lookup_elem);
	jump(&a, BPF_JEQ, R0, -1, 0, L_PASS);
	alu64_reg(&a, BPF_MOV, R7, R0);

	switch (policy) {
	case FDP__STEER_ROUND_ROBIN:
		/* r8 = (rr++) % slots, the add atomic and fetching (BPF_ATOMIC | BPF_FETCH). */
		alu32_imm(&a, BPF_MOV, R1, 1);
		emit(&a, BPF_STX | BPF_W | BPF_ATOMIC, R7, R1, OFF(rr), BPF_ADD | BPF_FETCH);
		alu32_reg(&a, BPF_MOV, R8, R1);
		alu32_imm(&a, BPF_MOD, R8, n);
		jump(&a, BPF_JA, 0, 0, 0, L_FIND);
		break;
	case FDP__STEER_HASH:
		load32(&a, R8, R6, offsetof(struct sk_reuseport_md, hash));
		alu32_imm(&a, BPF_MOD, R8, n);
		jump(&a, BPF_JA, 0, 0, 0, L_FIND);
		break;
	case FDP__STEER_HASH_IP:
		/* r1 = the client's address folded to 32 bits: IPv4's source, IPv6's four words xored. */
		load32(&a, R1, R6, offsetof(struct sk_reuseport_md, eth_protocol));
		jump(&a, BPF_JEQ, R1, -1, htons(ETH_P_IP), L_V4);
		jump(&a, BPF_JEQ, R1, -1, htons(ETH_P_IPV6), L_V6);
		jump(&a, BPF_JA, 0, 0, 0, L_PASS);
		for (int v6 = 0; v6 < 2; v6++) {
			label(&a, v6 ? L_V6 : L_V4);
			alu64_reg(&a, BPF_MOV, R1, R6);
			alu32_imm(&a, BPF_MOV, R2, v6 ? 8 : 12); /* saddr's offset in the header */
			alu64_reg(&a, BPF_MOV, R3, R10);
			alu64_imm(&a, BPF_ADD, R3, -24);
			alu32_imm(&a, BPF_MOV, R4, v6 ? 16 : 4);
			alu32_imm(&a, BPF_MOV, R5, BPF_HDR_START_NET);
			call(&a, BPF_FUNC_skb_load_bytes_relative);
			jump(&a, BPF_JNE, R0, -1, 0, L_PASS);
			load32(&a, R1, R10, -24);
			if (v6) {
				for (int16_t w = 1; w < 4; w++) {
					load32(&a, R2, R10, (int16_t)(-24 + 4 * w));
					alu32_reg(&a, BPF_XOR, R1, R2);
				}
			} else {
				jump(&a, BPF_JA, 0, 0, 0, L_MIX);
			}
		}
		/* The finalizer of MurmurHash3's 32-bit hash, as fdp__steer_bucket() computes it. */
		label(&a, L_MIX);
		alu32_reg(&a, BPF_MOV, R2, R1);
		alu32_imm(&a, BPF_RSH, R2, 16);
		alu32_reg(&a, BPF_XOR, R1, R2);
		alu32_imm(&a, BPF_MUL, R1, (int32_t)0x85ebca6bu);
		alu32_reg(&a, BPF_MOV, R2, R1);
		alu32_imm(&a, BPF_RSH, R2, 13);
		alu32_reg(&a, BPF_XOR, R1, R2);
		alu32_imm(&a, BPF_MUL, R1, (int32_t)0xc2b2ae35u);
		alu32_reg(&a, BPF_MOV, R2, R1);
		alu32_imm(&a, BPF_RSH, R2, 16);
		alu32_reg(&a, BPF_XOR, R1, R2);
		alu32_imm(&a, BPF_AND, R1, FDP__STEER_BUCKETS - 1);
		alu64_imm(&a, BPF_LSH, R1, 2);
		alu64_reg(&a, BPF_ADD, R1, R7);
		load32(&a, R8, R1, OFF(table));
		jump(&a, BPF_JGE, R8, -1, n, L_PASS); /* a table entry out of range */
		jump(&a, BPF_JA, 0, 0, 0, L_FIND);
		break;
	case FDP__STEER_LEAST_CONN:
		/*
		 * r8 = the live slot with the smallest count, scanning from the 4-tuple hash's slot
		 * so that ties go to a random one, not always to the lowest index; r4 its count.
		 * A slot taken out counts as count | 2^31 ((live - 1) & 2^31, live being 0 or 1):
		 * no jump for it, so the verifier's states stay one per turn of the loop.
		 */
		load32(&a, R3, R6, offsetof(struct sk_reuseport_md, hash));
		alu32_imm(&a, BPF_MOD, R3, n);
		alu32_imm(&a, BPF_MOV, R8, 0);
		alu32_imm(&a, BPF_MOV, R4, -1);
		alu32_imm(&a, BPF_MOV, R9, 0);
		label(&a, L_LC_LOOP);
		jump(&a, BPF_JGE, R9, -1, n, L_LC_DONE);
		wrapped_index(&a, R3, slots);
		load32(&a, R5, R2, OFF(live));
		alu32_imm(&a, BPF_SUB, R5, 1);
		alu32_imm(&a, BPF_AND, R5, (int32_t)0x80000000u);
		load32(&a, R0, R2, OFF(count));
		alu32_reg(&a, BPF_OR, R5, R0);
		jump(&a, BPF_JGE, R5, R4, 0, L_LC_NEXT);
		alu64_reg(&a, BPF_MOV, R4, R5);
		alu64_reg(&a, BPF_MOV, R8, R1);
		label(&a, L_LC_NEXT);
		alu64_imm(&a, BPF_ADD, R9, 1);
		jump(&a, BPF_JA, 0, 0, 0, L_LC_LOOP);
		label(&a, L_LC_DONE);
		/* The smallest with bit 31 set: no live slot (a shift, not a compare with 2^31,
		 * whose immediate would be sign-extended). */
		alu64_reg(&a, BPF_MOV, R1, R4);
		alu64_imm(&a, BPF_RSH, R1, 31);
		jump(&a, BPF_JNE, R1, -1, 0, L_PASS);
		jump(&a, BPF_JA, 0, 0, 0, L_SELECT);
		break;
	default:
		return -EINVAL;
	}

	if (policy != FDP__STEER_LEAST_CONN) {
		/* From the candidate r8, the first live slot: r8 itself, or the next ones round. */
		label(&a, L_FIND);
		alu32_imm(&a, BPF_MOV, R9, 0);
		label(&a, L_FIND_LOOP);
		jump(&a, BPF_JGE, R9, -1, n, L_PASS); /* no live slot */
		wrapped_index(&a, R8, slots);
		load32(&a, R2, R2, OFF(live));
		alu64_imm(&a, BPF_ADD, R9, 1);
		jump(&a, BPF_JEQ, R2, -1, 0, L_FIND_LOOP);
		alu64_reg(&a, BPF_MOV, R8, R1);
	}

	/*
	 * Select slot r8's socket, then count the connection against it: least-conn's measure,
	 * and for every policy what the workers read as the slot's queue (count - open) when
	 * they look for a stalled slot to take from.
	 */
	label(&a, L_SELECT);
	store32(&a, R10, -8, R8);
	alu64_reg(&a, BPF_MOV, R1, R6);
	load_map(&a, R2, sockarray_fd);
	alu64_reg(&a, BPF_MOV, R3, R10);
	alu64_imm(&a, BPF_ADD, R3, -8);
	alu64_imm(&a, BPF_MOV, R4, 0);
	call(&a, BPF_FUNC_sk_select_reuseport);
	jump(&a, BPF_JNE, R0, -1, 0, L_PASS);
	alu64_reg(&a, BPF_MOV, R1, R8);
	alu32_imm(&a, BPF_AND, R1, FDP__STEER_MAX_SLOTS - 1);
	alu64_imm(&a, BPF_LSH, R1, 2);
	alu64_reg(&a, BPF_ADD, R1, R7);
	alu32_imm(&a, BPF_MOV, R2, 1);
	emit(&a, BPF_STX | BPF_W | BPF_ATOMIC, R1, R2, OFF(count), BPF_ADD);
	/*
	 * SK_PASS whatever happened: with a socket selected the connection goes there; without
	 * (no live slot, a slot missing from the array) the kernel picks by its own hash.
	 */
	label(&a, L_PASS);
	alu64_imm(&a, BPF_MOV, R0, SK_PASS);
	emit(&a, BPF_JMP | BPF_EXIT, 0, 0, 0, 0);

	if (a.overflow)
		return -E2BIG;
	for (size_t i = 0; i < a.nfix; i++) {
		long to = a.at[a.fix[i].to];

		if (to < 0)
			return -EINVAL; /* a jump to a label never placed: a bug here */
		v[a.fix[i].insn].off = (int16_t)(to - (long)a.fix[i].insn - 1);
	}
	return (int)a.n;
}
