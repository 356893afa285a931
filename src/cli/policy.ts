/** `relais policy check` and `relais policy export`: the authorisation policy (docs/security.md "Authorisation policy"). */
import fs from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import { exportMosquitto } from '../security/mosquitto-export.js';
import { loadPolicy } from '../security/policy-file.js';
import { decide, hasRole, PolicyError, type Operation, type Policy } from '../security/policy.js';
import { SITE_ROLE } from '../security/site-claim.js';
import { EXIT, fail } from './common.js';

/** Usage mistakes exit 2 (Commander's own exit code is 1). */
const usageExits = (command: Command) => command.exitOverride((error) => process.exit(error.exitCode === 0 ? EXIT.OK : EXIT.USAGE));

function readPolicy(file: string): Policy {
  try {
    return loadPolicy(file);
  } catch (error) {
    if (error instanceof PolicyError) fail(EXIT.USAGE, `invalid policy: ${error.message}`);
    throw error;
  }
}

function checkCommand(): Command {
  return usageExits(new Command('check'))
    .description('say whether <identity> may publish on / subscribe to <topic>, and which rule decided (exit 0 allow, 1 deny, 2 usage or invalid policy)')
    .argument('<policy-file>', 'the policy (JSON)')
    .argument('<identity>', 'the identity, or the MQTT client id of one of its connections (<id>~rt, a session <id>~<session> and its ~rt: protocol §2.1)')
    .addArgument(new Command().createArgument('<operation>', 'pub or sub').choices(['pub', 'sub', 'publish', 'subscribe']))
    .argument('<topic>', 'a topic name (pub) or a filter (sub)')
    .option('--role <role...>', 'roles authentication gives the identity (the policy may add its own)')
    .option('--json', 'one JSON line')
    .action((file: string, identity: string, operation: string, topic: string, options: { role?: string[]; json?: boolean }) => {
      const policy = readPolicy(file);
      for (const role of options.role ?? []) if (!Object.hasOwn(policy.roles, role)) fail(EXIT.USAGE, `--role ${role}: the policy declares no such role (${Object.keys(policy.roles).join(', ')})`);
      const op: Operation = operation.startsWith('pub') ? 'publish' : 'subscribe';
      const decision = decide(policy, { identity, roles: options.role ?? [] }, op, topic);
      if (options.json) process.stdout.write(`${JSON.stringify({ identity, operation: op, topic, ...decision })}\n`);
      else process.stdout.write(`${decision.allow ? 'allow' : 'deny'} ${op} ${topic} for ${identity}: ${decision.rule}\n`);
      // What the topic alone does not decide for the other end of a link (docs/security.md "Sites").
      if (decision.allow && op === 'publish' && hasRole(policy, { identity, roles: options.role ?? [] }, SITE_ROLE)) {
        process.stderr.write(
          `relais: note: ${identity} has the role ${SITE_ROLE}: the broker also checks whom it speaks for; the envelope's source (and a presence's id) must be ${identity}, site:${identity}, or an id no client of that broker has and no other site claimed (builtin:site-claim)\n`,
        );
      }
      process.exitCode = decision.allow ? EXIT.OK : EXIT.ERROR;
    });
}

function exportCommand(): Command {
  return usageExits(new Command('export'))
    .description('write the policy as a Mosquitto 2.0 ACL file (relais.acl) and configuration fragment (relais-mosquitto.conf)')
    .addOption(new Option('--mosquitto <dir>', 'the directory to write them in').makeOptionMandatory())
    .addOption(new Option('--policy <file>', 'the policy (JSON)').makeOptionMandatory())
    .option('--password-file <file>', 'the password file the fragment names (default <dir>/relais.passwd, made with mosquitto_passwd)')
    .option('--depth <levels>', 'levels ${path} stands for, at most', '6')
    .action((options: { mosquitto: string; policy: string; passwordFile?: string; depth: string }) => {
      const policy = readPolicy(options.policy);
      const depth = Number(options.depth);
      if (!Number.isInteger(depth) || depth < 1 || depth > 20) fail(EXIT.USAGE, `--depth must be a whole number from 1 to 20, got ${options.depth}`);
      const dir = path.resolve(options.mosquitto);
      fs.mkdirSync(dir, { recursive: true });
      const aclPath = path.join(dir, 'relais.acl');
      const confPath = path.join(dir, 'relais-mosquitto.conf');
      const exported = exportMosquitto(policy, { aclPath, passwordPath: path.resolve(options.passwordFile ?? path.join(dir, 'relais.passwd')), depth });
      fs.writeFileSync(aclPath, exported.acl);
      fs.writeFileSync(confPath, exported.conf);
      for (const note of exported.notes) process.stderr.write(`relais: note: ${note}\n`);
      process.stdout.write(`wrote ${aclPath} and ${confPath}\n`);
    });
}

export function policyCommand(): Command {
  return new Command('policy').description('check and export the authorisation policy').addCommand(checkCommand()).addCommand(exportCommand());
}
