/*
 * Per-layer profiling hooks. Generated code built with -DTC_PROFILE calls tc_profile_begin(i)
 * and tc_profile_end(i) around layer i. The hooks add up timer ticks per layer for the current
 * sample and report each finished layer to the harness. The harness records that progress on
 * the host, so a hang can be traced to a layer.
 */
#include "profile.h"

#include "model.h"

/* At least one element, so a model without layers still compiles. */
static uint64_t tc_layer_ticks[TC_MODEL_NUM_LAYERS > 0 ? TC_MODEL_NUM_LAYERS : 1];
static uint64_t tc_layer_start;
static uint64_t tc_hook_ticks;

void tc_profile_begin(int layer)
{
    (void)layer;
    tc_layer_start = tc_timer_now();
}

void tc_profile_end(int layer)
{
    uint64_t now = tc_timer_now();
    if (layer >= 0 && layer < TC_MODEL_NUM_LAYERS) {
        tc_layer_ticks[layer] += now - tc_layer_start;
    }
    tc_harness_layer_done(layer);
    /* Time spent here after the layer ended (progress output) is not model work. */
    tc_hook_ticks += tc_timer_now() - now;
}

void tc_profile_reset(void)
{
    int layer;
    for (layer = 0; layer < TC_MODEL_NUM_LAYERS; layer++) {
        tc_layer_ticks[layer] = 0;
    }
    tc_hook_ticks = 0;
}

uint64_t tc_profile_layer_ticks(int layer)
{
    return tc_layer_ticks[layer];
}

uint64_t tc_profile_hook_ticks(void)
{
    return tc_hook_ticks;
}
