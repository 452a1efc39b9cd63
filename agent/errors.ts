// A small error hierarchy: each carries the exit code the CLI uses (README, "Commands": 2 bad input, 3 runtime).

export class PortwardenError extends Error {
  constructor(message: string, readonly exitCode: number) {
    super(message);
    this.name = new.target.name;
  }
}

/** Bad input or usage: exit 2. */
export class UsageError extends PortwardenError {
  constructor(message: string) {
    super(message, 2);
  }
}

/** A file that is not a valid policy/config; each problem is already "file:line:col: what". */
export class InputError extends PortwardenError {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'), 2);
  }
}

/** The host would not do what we asked (cannot read sockets, nft refused the rules): exit 3. */
export class RuntimeError extends PortwardenError {
  constructor(message: string) {
    super(message, 3);
  }
}
