// Failures of the control server with stable codes and the HTTP status each one answers with.

export class ControlError extends Error {
  constructor(readonly code: string, readonly status: number, message: string, readonly issues?: readonly string[]) {
    super(message);
    this.name = 'ControlError';
  }
}

export class NotFoundError extends ControlError {
  constructor(message: string) { super('PILLION_NOT_FOUND', 404, message); }
}

export class BadRequestError extends ControlError {
  constructor(message: string, issues?: readonly string[]) { super('PILLION_BAD_REQUEST', 400, message, issues); }
}

export class UnauthorizedError extends ControlError {
  // The message never says which token was expected or what was received.
  constructor() { super('PILLION_UNAUTHORIZED', 401, 'missing or invalid bearer token'); }
}

/** A stored version whose checksum does not match its content: refuse rather than push it. */
export class StoreCorruptError extends ControlError {
  constructor(message: string) { super('PILLION_STORE_CORRUPT', 500, message); }
}

/** The data directory is held by another running control server. */
export class StoreLockedError extends ControlError {
  constructor(file: string) { super('PILLION_STORE_LOCKED', 500, `${file} is in use by another control server`); }
}
