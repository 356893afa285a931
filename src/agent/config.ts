/**
 * The agent's configuration file (docs/agent.md): which services run and how. Validated at
 * start; a mistake stops the agent with a message naming the field. Every default is here.
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { MAX_CHUNK_BYTES, TRANSFER_DEFAULTS } from './transfer-protocol.js';

export const AGENT_DEFAULTS = {
  maxListEntries: 5000,
  command: {
    /** Output forwarded per command (stdout and stderr together); beyond, cut with a marker. */
    maxOutputBytes: 1024 * 1024,
    /** The end of the output kept for the final response. */
    tailBytes: 4096,
    /** Seconds a command may run when the request gives no `timeout`. */
    defaultTimeout: 60,
    /** The longest `timeout` a request may ask for, in seconds. */
    maxTimeout: 3600,
    /** Seconds between SIGTERM and SIGKILL of a command's process group. */
    killGrace: 2,
    /** Commands run at once; more are refused with code 8 (busy). */
    maxRunning: 8,
  },
  benchmark: { fileBytes: 64 * 1024 * 1024, roundTrips: 200 },
} as const;

/** A name other parts see (a disk id, a rule name): what the bus's ids allow. */
const name = z.string().regex(/^[A-Za-z0-9_.:@-]{1,64}$/, 'must be 1-64 characters of A-Z a-z 0-9 _ . : @ -');

const anchoredPattern = z.strictObject({ pattern: z.string().refine(compiles, 'must be a valid regular expression') });

/** One argument of a rule: a literal, or a regular expression the whole argument must match. */
const argumentRule = z.union([z.string(), anchoredPattern]);

const argvRule = z.strictObject({
  name,
  /** The program, an absolute path, matched exactly (no PATH lookup). */
  program: z.string().refine((value) => path.isAbsolute(value), 'must be an absolute path'),
  /** The arguments, one rule per position. */
  args: z.array(argumentRule).default([]),
  /** Further arguments allowed after `args`, each matching this, at most `max` of them. */
  moreArgs: z.strictObject({ pattern: anchoredPattern.shape.pattern, max: z.number().int().min(1).max(1000) }).optional(),
  shell: z.literal(false).optional(),
});

const shellRule = z.strictObject({
  name,
  /** Commands run through /bin/sh -c: only where a rule says so. */
  shell: z.literal(true),
  /** The command line, exactly (`command`) or matching a regular expression (`pattern`). */
  command: z.union([z.string(), anchoredPattern]),
});

export type ArgvRule = z.infer<typeof argvRule>;
export type ShellRule = z.infer<typeof shellRule>;
export type CommandRule = ArgvRule | ShellRule;

const diskSchema = z.strictObject({
  path: z.string().refine((value) => path.isAbsolute(value), 'must be an absolute path'),
  label: z.string().max(200).optional(),
  readOnly: z.boolean().default(false),
  /** Announce files that appear in it (`system/disk/new_file/notification`). */
  watch: z.boolean().default(false),
});

const seconds = z.number().positive().max(2_000_000);

export const agentConfigSchema = z.strictObject({
  services: z.strictObject({
    disks: z
      .strictObject({
        enabled: z.boolean().default(true),
        disks: z.record(name, diskSchema),
        /** The disk that is the local repository: where `read_file` makes a file available. */
        repository: name.optional(),
        maxListEntries: z.number().int().min(1).max(1_000_000).default(AGENT_DEFAULTS.maxListEntries),
      })
      .optional(),
    components: z.strictObject({ enabled: z.boolean().default(true) }).optional(),
    command: z
      .strictObject({
        enabled: z.boolean().default(true),
        /** Names this allow-list in logs and refusals. */
        ruleSet: name,
        rules: z.array(z.union([argvRule, shellRule])),
        maxOutputBytes: z.number().int().min(1024).default(AGENT_DEFAULTS.command.maxOutputBytes),
        tailBytes: z.number().int().min(0).max(256 * 1024).default(AGENT_DEFAULTS.command.tailBytes),
        defaultTimeout: seconds.default(AGENT_DEFAULTS.command.defaultTimeout),
        maxTimeout: seconds.default(AGENT_DEFAULTS.command.maxTimeout),
        killGrace: seconds.default(AGENT_DEFAULTS.command.killGrace),
        maxRunning: z.number().int().min(1).max(1000).default(AGENT_DEFAULTS.command.maxRunning),
      })
      .optional(),
    transfer: z
      .strictObject({
        enabled: z.boolean().default(true),
        /** The largest file sent to or fetched from this agent, in bytes. */
        maxFileBytes: z.number().int().min(1).default(TRANSFER_DEFAULTS.maxFileBytes),
        /** Bytes of file per chunk message (protocol §3.4: its Base64 must fit a message). */
        chunkBytes: z.number().int().min(4096).max(MAX_CHUNK_BYTES).default(TRANSFER_DEFAULTS.chunkBytes),
        /** Chunks a requester keeps in flight. */
        window: z.number().int().min(1).max(64).default(TRANSFER_DEFAULTS.window),
        /** The longest silence a transfer gets (one nearly done); also the age at which an unresumed partial file is swept. */
        idleTimeout: seconds.default(TRANSFER_DEFAULTS.idleTimeout),
        /** The silence a transfer that has moved nothing gets; its progress earns it more, up to idleTimeout. */
        stallTimeout: seconds.default(TRANSFER_DEFAULTS.stallTimeout),
        maxTransfers: z.number().int().min(1).max(10_000).default(TRANSFER_DEFAULTS.maxTransfers),
        /** Transfers one identity may have open at once. */
        maxTransfersPerIdentity: z.number().int().min(1).max(10_000).default(TRANSFER_DEFAULTS.maxTransfersPerIdentity),
        /** Bytes of uploads (announced sizes) one identity may have open at once. */
        maxBytesPerIdentity: z.number().int().min(1).default(TRANSFER_DEFAULTS.maxBytesPerIdentity),
      })
      .optional(),
    logs: z
      .strictObject({
        enabled: z.boolean().default(true),
        /** The log files served, by source name: a requester names a source, never a path. */
        files: z.record(name, z.string().refine((value) => path.isAbsolute(value), 'must be an absolute path')).default({}),
        /** Serve the system journal as source `journal` (through journalctl, when the host has it). */
        journal: z.boolean().default(true),
        /** Bytes read backwards from a file's end, at most, to find the lines asked for. */
        maxScanBytes: z.number().int().min(64 * 1024).default(64 * 1024 * 1024),
        /** Follows served at once; more get code 8 (busy). */
        maxFollows: z.number().int().min(1).max(1000).default(8),
      })
      .optional(),
    benchmark: z
      .strictObject({
        enabled: z.boolean().default(true),
        /** The read-write disk where the disk test writes (and removes) its file. */
        disk: name,
        fileBytes: z.number().int().min(1024 * 1024).max(16 * 1024 * 1024 * 1024).default(AGENT_DEFAULTS.benchmark.fileBytes),
        roundTrips: z.number().int().min(1).max(100_000).default(AGENT_DEFAULTS.benchmark.roundTrips),
      })
      .optional(),
  }),
});

export type AgentConfig = z.infer<typeof agentConfigSchema>;
export type DisksConfig = NonNullable<AgentConfig['services']['disks']>;
export type DiskConfig = DisksConfig['disks'][string];
export type CommandConfig = NonNullable<AgentConfig['services']['command']>;
export type TransferConfig = NonNullable<AgentConfig['services']['transfer']>;
export type LogsConfig = NonNullable<AgentConfig['services']['logs']>;
export type BenchmarkConfig = NonNullable<AgentConfig['services']['benchmark']>;

export class AgentConfigError extends Error {
  override name = 'AgentConfigError';
}

/** Checks a parsed config: the schema, then what a schema cannot say (disks exist, names refer to something). */
export function parseAgentConfig(value: unknown, source = 'the agent config'): AgentConfig {
  const parsed = agentConfigSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.length ? issue.path.join('.') : '(top level)';
    throw new AgentConfigError(`${source}: ${field}: ${issue.message}`);
  }
  const config = parsed.data;
  const disks = config.services.disks;
  if (disks) {
    for (const [id, disk] of Object.entries(disks.disks)) {
      const stat = fs.statSync(disk.path, { throwIfNoEntry: false });
      if (!stat?.isDirectory()) throw new AgentConfigError(`${source}: services.disks.disks.${id}.path: ${disk.path} is not a directory`);
    }
    if (disks.repository !== undefined) {
      const repository = disks.disks[disks.repository];
      if (!repository) throw new AgentConfigError(`${source}: services.disks.repository: no disk named ${disks.repository}`);
      if (repository.readOnly) throw new AgentConfigError(`${source}: services.disks.repository: disk ${disks.repository} is read-only`);
    }
  }
  const command = config.services.command;
  if (command) {
    const seen = new Set<string>();
    command.rules.forEach((rule, index) => {
      if (seen.has(rule.name)) throw new AgentConfigError(`${source}: services.command.rules.${index}.name: ${rule.name} is used twice`);
      seen.add(rule.name);
    });
    if (command.defaultTimeout > command.maxTimeout) throw new AgentConfigError(`${source}: services.command.defaultTimeout: over maxTimeout (${command.maxTimeout})`);
  }
  if (config.services.transfer?.enabled && !disks?.enabled) {
    throw new AgentConfigError(`${source}: services.transfer: transfers go to and from the disks of services.disks, which is not enabled`);
  }
  const transfer = config.services.transfer;
  if (transfer && transfer.stallTimeout > transfer.idleTimeout) throw new AgentConfigError(`${source}: services.transfer.stallTimeout: over idleTimeout (${transfer.idleTimeout})`);
  const benchmark = config.services.benchmark;
  if (benchmark?.enabled) {
    const disk = disks?.disks[benchmark.disk];
    if (!disk) throw new AgentConfigError(`${source}: services.benchmark.disk: no disk named ${benchmark.disk} (services.disks.disks)`);
    if (disk.readOnly) throw new AgentConfigError(`${source}: services.benchmark.disk: disk ${benchmark.disk} is read-only`);
  }
  return config;
}

/** Reads and checks the config file. */
export function loadAgentConfig(file: string): AgentConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new AgentConfigError(`cannot read the agent config ${file}: ${(error as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new AgentConfigError(`${file} is not valid JSON: ${(error as Error).message}`);
  }
  return parseAgentConfig(value, file);
}

function compiles(pattern: string): boolean {
  try {
    new RegExp(pattern);
    return true;
  } catch {
    return false;
  }
}

/** A pattern of the allow-list, anchored: it must match the whole argument. */
export function anchored(pattern: string): RegExp {
  return new RegExp(`^(?:${pattern})$`);
}
