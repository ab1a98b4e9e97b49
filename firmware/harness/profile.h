/* Per-layer tick accounting shared by profile.c and harness_main.c. */
#ifndef TC_PROFILE_H
#define TC_PROFILE_H

#include "tc_harness.h"

/* Hooks called by generated code built with -DTC_PROFILE. */
void tc_profile_begin(int layer);
void tc_profile_end(int layer);

/* Zero the per-layer tick sums before a sample. */
void tc_profile_reset(void);
/* Return the ticks spent in `layer` since the last reset. */
uint64_t tc_profile_layer_ticks(int layer);
/* Return the ticks spent inside the hooks after a layer ended, since the last reset. */
uint64_t tc_profile_hook_ticks(void);

/* Implemented by the harness: called after each finished layer. */
void tc_harness_layer_done(int layer);

#endif /* TC_PROFILE_H */
