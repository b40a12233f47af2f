// The request pipeline: context, handler and stage types, and their composition.
export * from './types';
export { CancelSignal } from './cancel-signal';
