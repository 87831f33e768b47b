// Structured logs for the operator: one JSON object per line on stderr, with time, level and
// msg first, then fields (gatewaydeployment="ns/name", kind, error, ...). A child logger
// carries fields into every line it writes. The level comes from PORTWAY_LOG_LEVEL (the
// chart's logLevel value) unless given.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function parseLogLevel(raw: string | undefined, fallback: LogLevel = 'info'): LogLevel {
  const v = raw?.trim().toLowerCase();
  return v && v in RANK ? (v as LogLevel) : fallback;
}

export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go (default: process.stderr). */
  write?: (line: string) => void;
  now?: () => Date;
}

export class Logger {
  private readonly min: number;
  private readonly write: (line: string) => void;
  private readonly now: () => Date;

  constructor(
    private readonly options: LoggerOptions = {},
    private readonly fields: LogFields = {},
  ) {
    this.min = RANK[options.level ?? parseLogLevel(process.env.PORTWAY_LOG_LEVEL)];
    this.write = options.write ?? ((line) => process.stderr.write(line));
    this.now = options.now ?? (() => new Date());
  }

  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger {
    return new Logger(this.options, { ...this.fields, ...fields });
  }

  enabled(level: LogLevel): boolean {
    return RANK[level] >= this.min;
  }

  debug(msg: string, fields?: LogFields): void {
    this.log('debug', msg, fields);
  }

  info(msg: string, fields?: LogFields): void {
    this.log('info', msg, fields);
  }

  warn(msg: string, fields?: LogFields): void {
    this.log('warn', msg, fields);
  }

  error(msg: string, fields?: LogFields): void {
    this.log('error', msg, fields);
  }

  log(level: LogLevel, msg: string, fields?: LogFields): void {
    if (RANK[level] < this.min) return;
    const entry: LogFields = { time: this.now().toISOString(), level, msg };
    for (const [k, v] of Object.entries({ ...this.fields, ...fields })) {
      if (k === 'time' || k === 'level' || k === 'msg' || v === undefined) continue;
      entry[k] = v instanceof Error ? v.message : v;
    }
    this.write(`${JSON.stringify(entry)}\n`);
  }

  /** Adapter for components that log plain lines (reflectors, leader election). */
  lines(level: LogLevel = 'info', fields?: LogFields): (line: string) => void {
    return (line) => this.log(level, line, fields);
  }
}
