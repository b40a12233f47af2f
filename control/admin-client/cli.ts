// What every control client command shares: its flags, and AdminClientError -> one-line CliError.
import { CliError } from '../../cli/errors';
import { AdminClientError } from './index';

export const TARGET_FLAGS = {
  control: { type: 'string' },
  'token-file': { type: 'string' },
  'ca-file': { type: 'string' },
} as const;

/** Runs `fn`, turning client failures into `pillion COMMAND: reason` with exit code 1. */
export async function withAdminErrors<T>(command: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof AdminClientError) {
      const issues = err.issues?.length ? `: ${err.issues.join('; ')}` : '';
      throw new CliError(`pillion ${command}: ${err.message}${issues}`, 1);
    }
    throw err;
  }
}
