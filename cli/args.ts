// Flag parsing for every command: node's parseArgs, with one-line errors on bad input.
import { parseArgs, ParseArgsConfig } from 'node:util';
import { CliError } from './errors';
import { parseDurationMs, parseHostPort } from '../proxy/config';

type Options = NonNullable<ParseArgsConfig['options']>;

export function parseFlags<O extends Options>(command: string, argv: string[], options: O, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (err) {
    throw new CliError(`pillion ${command}: ${(err as Error).message.split('\n')[0]}`, 2);
  }
}

export function portFlag(command: string, name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 0 || n > 65535) throw new CliError(`pillion ${command}: --${name} must be a port number 0-65535 (got ${JSON.stringify(value)})`, 2);
  return n;
}

export function durationFlag(command: string, name: string, value: string | undefined, fallbackMs: number): number {
  if (value === undefined) return fallbackMs;
  const ms = parseDurationMs(value);
  if (ms === undefined) throw new CliError(`pillion ${command}: --${name} must be a duration such as 500ms, 5s or 1m (got ${JSON.stringify(value)})`, 2);
  return ms;
}

/** HOST:PORT, with [v6]:port accepted. */
export function hostPortFlag(command: string, name: string, value: string): { host: string; port: number } {
  const endpoint = parseHostPort(value);
  if (!endpoint) throw new CliError(`pillion ${command}: --${name} must be HOST:PORT (got ${JSON.stringify(value)})`, 2);
  return endpoint;
}
