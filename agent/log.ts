// JSON-lines logs on stdout (journald), with anything secret-looking redacted.
import { pino, type Logger } from 'pino';

export function createLogger(level = process.env.PORTWARDEN_LOG_LEVEL ?? 'info'): Logger {
  return pino({
    level,
    base: { service: 'portwarden' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: ['secret', 'password', 'pass', 'authorization', '*.secret', '*.password', '*.pass', '*.authorization', 'headers["webhook-signature"]'],
      censor: '[redacted]',
    },
  });
}
