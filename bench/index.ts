// The benchmark suite behind `pillion bench`: scenarios, load generators, accounting and reports.
export { runBench, renderResults, BenchOptions } from './runner';
export { allScenarios, slowScenarios } from './scenarios';
export type { BenchResults } from './results';
