import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseAgentConfig } from '../../src/agent/config.js';
import { RemoteError, type Step } from '../../src/index.js';
import { waitFor } from '../testkit/index.js';

/** The payload of a progress or final step. */
const payloadOf = (step: Step): unknown => (step.kind === 'accepted' ? undefined : step.payload);
import { collectNotifications, startAgentKit, tempDir, type AgentKit } from './agent-kit.js';

describe('agent disks (PSEC catalogue)', { timeout: 60_000 }, () => {
  let env: AgentKit;
  let root: string;
  let outside: string;
  const dirs = { usb: '', repo: '', ro: '', gone: '' };
  const call = (action: string, payload: unknown) => env.caller.request(action, payload, { target: env.agent.bus.id, timeout: 10_000 });
  const refused = async (action: string, payload: unknown, reason: string, message: RegExp) => {
    await assert.rejects(call(action, payload), (error: RemoteError) => {
      assert.equal(error.responseCode, 1, `${action} ${JSON.stringify(payload)}: ${error.message}`);
      assert.match(error.message, message);
      assert.equal((error.details as { reason: string }).reason, reason);
      return true;
    });
  };

  before(async () => {
    root = tempDir('disks');
    outside = path.join(root, 'outside');
    for (const name of Object.keys(dirs) as Array<keyof typeof dirs>) {
      dirs[name] = path.join(root, name);
      fs.mkdirSync(dirs[name]);
    }
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'secret.txt'), 'not yours');
    fs.writeFileSync(path.join(dirs.ro, 'kept.txt'), 'read me');
    fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(dirs.usb, 'secret-link'));
    fs.symlinkSync(outside, path.join(dirs.usb, 'outside-dir'));
    fs.symlinkSync('/dev/null', path.join(dirs.usb, 'null-link'));
    execFileSync('mkfifo', [path.join(dirs.usb, 'fifo')]);
    env = await startAgentKit({
      services: {
        disks: {
          disks: {
            usb: { path: dirs.usb, label: 'USB key', watch: true },
            repo: { path: dirs.repo },
            ro: { path: dirs.ro, readOnly: true },
            gone: { path: dirs.gone },
          },
          repository: 'repo',
        },
      },
    });
  });

  after(async () => {
    await env?.cleanup();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('list_disks - each configured disk as {label, id}', async () => {
    assert.deepEqual(await call('system/disks/list_disks', {}), {
      disks: [
        { label: 'USB key', id: 'usb' },
        { label: 'repo', id: 'repo' },
        { label: 'ro', id: 'ro' },
        { label: 'gone', id: 'gone' },
      ],
    });
  });

  it('create_file, read_file, get_file_footprint - a round trip; read_file puts the file in the local repository and says so', async () => {
    const bytes = randomBytes(10_000);
    const notes = await collectNotifications(env.caller, 'system/disk/new_file');
    assert.deepEqual(await call('system/disks/create_file', { disk: 'usb', filepath: 'in/report.bin', data: bytes.toString('base64') }), { status: 'ok' });
    assert.deepEqual(fs.readFileSync(path.join(dirs.usb, 'in/report.bin')), bytes);
    const sha = createHash('sha256').update(bytes).digest('hex');
    assert.deepEqual(await call('system/disks/get_file_footprint', { disk: 'usb', filepath: 'in/report.bin' }), { footprint: sha });
    assert.deepEqual(await call('system/disks/read_file', { source_disk: 'usb', filepath: 'in/report.bin' }), { status: 'ok' });
    assert.deepEqual(await call('system/disks/get_file_footprint', { disk: 'repo', filepath: 'in/report.bin' }), { footprint: sha });
    const note = await waitFor(() => notes.received.find((message) => (message.envelope.payload as { disk: string }).disk === 'repo'), notes.events, 'message');
    assert.deepEqual(note.envelope.payload, { disk: 'repo', filepath: 'in/report.bin', size_in_bytes: 10_000 });
  });

  it('create_file - accepts the library form {$base64} and refuses what is not Base64', async () => {
    assert.deepEqual(await call('system/disks/create_file', { disk: 'usb', filepath: 'b64.txt', data: { $base64: 'aGVsbG8=' } }), { status: 'ok' });
    assert.equal(fs.readFileSync(path.join(dirs.usb, 'b64.txt'), 'utf8'), 'hello');
    await refused('system/disks/create_file', { disk: 'usb', filepath: 'bad.txt', data: 'not base64!' }, 'invalid-data', /data: not valid Base64/);
  });

  it('list_files - files and folders with the PSEC shape; links out, FIFOs and devices left out', async () => {
    fs.mkdirSync(path.join(dirs.usb, 'docs'), { recursive: true });
    fs.writeFileSync(path.join(dirs.usb, 'docs/a.txt'), 'abc');
    const answer = (await call('system/disks/list_files', { disk: 'usb' })) as { disk: string; files: Array<{ path: string }> };
    assert.equal(answer.disk, 'usb');
    assert.deepEqual(answer.files.find((file) => file.path === 'docs/a.txt'), { path: 'docs/a.txt', size: 3, name: 'a.txt', type: 'file' });
    assert.deepEqual(answer.files.find((file) => file.path === 'docs'), { path: 'docs', size: 0, name: 'docs', type: 'folder' });
    for (const hidden of ['secret-link', 'outside-dir', 'null-link', 'fifo']) assert.ok(!answer.files.some((file) => file.path === hidden), `${hidden} is listed`);
  });

  describe('every path stays on its disk (code 1, a reason)', () => {
    const reading: Array<[string, (filepath: string) => unknown]> = [
      ['system/disks/get_file_footprint', (filepath) => ({ disk: 'usb', filepath })],
      ['system/disks/read_file', (filepath) => ({ source_disk: 'usb', filepath })],
      ['system/disks/copy_file', (filepath) => ({ source_disk: 'usb', filepath, target_disk: 'repo' })],
      ['system/disks/remove_file', (filepath) => ({ disk: 'usb', filepath })],
    ];
    for (const [action, payload] of reading) {
      it(`${action} - refuses .., an absolute path, a symlink out, /dev/null through a symlink, a FIFO`, async () => {
        await refused(action, payload('../outside/secret.txt'), 'parent-segment', /contains '\.\.'/);
        await refused(action, payload('in/../../outside/secret.txt'), 'parent-segment', /contains '\.\.'/);
        await refused(action, payload(path.join(outside, 'secret.txt')), 'absolute-path', /is absolute/);
        await refused(action, payload('secret-link'), 'symlink-escape', /leads out of disk usb/);
        await refused(action, payload('outside-dir/secret.txt'), 'symlink-escape', /leads out of disk usb/);
        await refused(action, payload('null-link'), 'symlink-escape', /leads out of disk usb/);
        await refused(action, payload('fifo'), 'not-a-file', /is a FIFO \(named pipe\), not a regular file|is a FIFO \(named pipe\): only regular files/);
        assert.equal(fs.readFileSync(path.join(outside, 'secret.txt'), 'utf8'), 'not yours');
      });
    }

    it('create_file - refuses .., an absolute path, a folder symlinked out; writes nothing outside', async () => {
      const data = 'aGVsbG8=';
      await refused('system/disks/create_file', { disk: 'usb', filepath: '../outside/new.txt', data }, 'parent-segment', /contains '\.\.'/);
      await refused('system/disks/create_file', { disk: 'usb', filepath: path.join(outside, 'new.txt'), data }, 'absolute-path', /is absolute/);
      await refused('system/disks/create_file', { disk: 'usb', filepath: 'outside-dir/new.txt', data }, 'symlink-escape', /leads out of disk usb/);
      await refused('system/disks/create_file', { disk: 'usb', filepath: 'fifo', data }, 'not-a-file', /exists and is a FIFO/);
      assert.deepEqual(fs.readdirSync(outside), ['secret.txt']);
    });

    it('a device file inside the disk is refused as a device', async (t) => {
      try {
        execFileSync('mknod', [path.join(dirs.usb, 'null-device'), 'c', '1', '3'], { stdio: 'ignore' });
      } catch {
        t.skip('mknod not permitted here');
        return;
      }
      await refused('system/disks/get_file_footprint', { disk: 'usb', filepath: 'null-device' }, 'not-a-file', /is a character device, not a regular file/);
      await refused('system/disks/remove_file', { disk: 'usb', filepath: 'null-device' }, 'not-a-file', /is a character device/);
    });
  });

  it('copy_file - streams a file three times the message limit, with progress, to an identical copy', async () => {
    const bytes = randomBytes(3 * 1024 * 1024 + 17);
    fs.writeFileSync(path.join(dirs.usb, 'big.bin'), bytes);
    const steps: Step[] = [];
    for await (const step of env.caller.call('system/disks/copy_file', { source_disk: 'usb', filepath: 'big.bin', target_disk: 'repo' }, { target: env.agent.bus.id, timeout: 30_000 })) steps.push(step);
    const progress = steps.filter((step) => step.kind === 'progress');
    assert.ok(progress.length >= 3, `${progress.length} progress steps`);
    assert.deepEqual(progress.at(-1)!.payload, { bytes: bytes.length, total: bytes.length });
    assert.deepEqual(payloadOf(steps.at(-1)!), { status: 'ok' });
    assert.equal(createHash('sha256').update(fs.readFileSync(path.join(dirs.repo, 'big.bin'))).digest('hex'), createHash('sha256').update(bytes).digest('hex'));
    assert.ok(!fs.readdirSync(dirs.repo).some((name) => name.startsWith('.relais-partial-')), 'a partial file was left');
  });

  it('a read-only disk refuses create, remove and being a copy target; it can still be read', async () => {
    await refused('system/disks/create_file', { disk: 'ro', filepath: 'x.txt', data: 'aGVsbG8=' }, 'read-only', /disk ro is read-only/);
    await refused('system/disks/remove_file', { disk: 'ro', filepath: 'kept.txt' }, 'read-only', /disk ro is read-only/);
    await refused('system/disks/copy_file', { source_disk: 'usb', filepath: 'b64.txt', target_disk: 'ro' }, 'read-only', /disk ro is read-only/);
    assert.deepEqual(fs.readdirSync(dirs.ro), ['kept.txt']);
    assert.deepEqual(await call('system/disks/get_file_footprint', { disk: 'ro', filepath: 'kept.txt' }), { footprint: createHash('sha256').update('read me').digest('hex') });
  });

  it('remove_file - removes a regular file; an unknown disk or file is code 1 saying so', async () => {
    fs.writeFileSync(path.join(dirs.usb, 'trash.txt'), 'x');
    assert.deepEqual(await call('system/disks/remove_file', { disk: 'usb', filepath: 'trash.txt' }), { status: 'ok' });
    assert.ok(!fs.existsSync(path.join(dirs.usb, 'trash.txt')));
    await refused('system/disks/remove_file', { disk: 'usb', filepath: 'trash.txt' }, 'not-found', /no file trash\.txt on disk usb/);
    await refused('system/disks/list_files', { disk: 'nope' }, 'unknown-disk', /no disk named nope/);
  });

  it('a payload of the wrong shape is code 2 naming the field', async () => {
    await assert.rejects(call('system/disks/get_file_footprint', { disk: 'usb' }), (error: RemoteError) => error.responseCode === 2 && /payload\.filepath/.test(error.message));
  });

  it('a file that appears in a watched disk is announced (system/disk/new_file)', async () => {
    const notes = await collectNotifications(env.caller, 'system/disk/new_file');
    fs.writeFileSync(path.join(dirs.usb, 'dropped.txt'), 'twelve bytes');
    const note = await waitFor(() => notes.received.find((message) => (message.envelope.payload as { filepath: string }).filepath === 'dropped.txt'), notes.events, 'message');
    assert.deepEqual(note.envelope.payload, { disk: 'usb', filepath: 'dropped.txt', size_in_bytes: (note.envelope.payload as { size_in_bytes: number }).size_in_bytes });
    assert.equal(note.envelope.source, env.agent.bus.id);
  });

  it('a service that fails says so on system/events/error with the PSEC fields', async () => {
    const errors = await collectNotifications(env.caller, 'system/events/error');
    fs.rmdirSync(dirs.gone);
    await assert.rejects(call('system/disks/list_files', { disk: 'gone' }), (error: RemoteError) => error.responseCode === 1);
    const note = await waitFor(() => errors.received[0], errors.events, 'message');
    const payload = note.envelope.payload as { module: string; datetime: string; level: number; description: string };
    assert.equal(payload.module, 'disks');
    assert.equal(payload.level, 3);
    assert.ok(!Number.isNaN(Date.parse(payload.datetime)));
    assert.match(payload.description, /system\/disks\/list_files failed: .*ENOENT/);
  });

  it('config - a bad field stops the agent with a message naming it', () => {
    assert.throws(() => parseAgentConfig({ services: { disks: { disks: { usb: { path: 'relative/dir' } } } } }), /services\.disks\.disks\.usb\.path: must be an absolute path/);
    assert.throws(() => parseAgentConfig({ services: { disks: { disks: { usb: { path: dirs.usb, watsh: true } } } } }), /services\.disks\.disks\.usb: Unrecognized key: "watsh"/);
    assert.throws(() => parseAgentConfig({ services: { disks: { disks: { usb: { path: path.join(root, 'missing') } } } } }), /services\.disks\.disks\.usb\.path: .* is not a directory/);
    assert.throws(() => parseAgentConfig({ services: { disks: { disks: { ro: { path: dirs.ro, readOnly: true } }, repository: 'ro' } } }), /services\.disks\.repository: disk ro is read-only/);
  });
});
