// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* No programs: the maps the process sensor and the policy objects share, created by an object that needs no
 * verifier and no kernel BTF, so that the objects with programs can be loaded side by side (each on these maps,
 * as the agent's object specs list them). The agent loads it twice: the process sensor's maps, then the policy
 * engine's on them (ObjectSpecs.Shared and ObjectSpecs.PolicyMaps). */
#define SA_FAMILY SA_FAMILY_TRACEPOINT
#define SA_MAPS_ONLY
#include "policy.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";
