// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* No programs: the maps the process sensor and the policy objects share, created by one object that needs no
 * verifier and no kernel BTF, so that the objects with programs can be loaded side by side (each on the maps
 * of this one, as the agent's object specs list them). */
#define SA_FAMILY SA_FAMILY_TRACEPOINT
#define SA_MAPS_ONLY
#include "policy.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";
