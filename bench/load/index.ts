// Load generators: wrk for maximum throughput, our own fixed-rate generator for latency at 1,000 req/s.
export { runWrk, parseWrkOutput, WrkResult } from './wrk';
export { runFixedRate, FixedRateResult } from './fixed-rate';
