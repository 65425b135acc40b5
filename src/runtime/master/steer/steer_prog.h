/*
 * Inside steering: the program's assembler (steer_prog.c), used by steer.c alone.
 */
#ifndef FDP_STEER_PROG_H
#define FDP_STEER_PROG_H

#include "steer.h"

#include <linux/bpf.h>
#include <stddef.h>

/* The most instructions a program has (hash-ip is the longest: 78). */
#define FDP__STEER_PROG_MAX 128

/*
 * Assemble the program of `policy` for a group of `slots` slots whose state map and socket
 * array are the descriptors given, into v (max instructions). Returns the instruction count,
 * -EINVAL (a policy or slot count it does not know) or -E2BIG (v too small).
 */
int fdp__steer_prog_build(struct bpf_insn *v, size_t max, enum fdp__steer_policy policy,
                          unsigned slots, int state_fd, int sockarray_fd);

#endif
