// Every bench scenario, in table order: the baseline, Pillion's variants, then the alternatives.
import { direct } from './direct';
import { pillionScenarios } from './pillion';
import { httpProxy, fastifyProxy } from './node-proxies';
import { nginx, haproxy } from './native-proxies';
import type { Scenario } from './types';

export * from './types';

export const allScenarios: readonly Scenario[] = [direct, ...pillionScenarios, httpProxy, fastifyProxy, nginx, haproxy];

/** Left out of --quick (the 2-minute smoke run) unless asked for by name. */
export const slowScenarios: readonly string[] = ['pillion-trace-100', 'pillion-pair-global'];
