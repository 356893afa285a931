/**
 * `system/components/discover` (PSEC's `LISTE_COMPOSANTS`; docs/agent.md "Components"): what this host has that the bus
 * may care about, as `{ components: [{ id, label, type }] }`: the agent's disks and services,
 * and the devices it can see (block devices from /sys/block, network interfaces).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AgentService, Component } from './service.js';

export const DISCOVER_ACTION = 'system/components/discover';

export function componentsService(services: () => AgentService[]): AgentService {
  return {
    name: 'components',
    actions: {
      [DISCOVER_ACTION]: async () => {
        const components: Component[] = [];
        for (const service of services()) {
          components.push({ id: `service:${service.name}`, label: `agent service ${service.name}`, type: 'service' });
          components.push(...((await service.components?.()) ?? []));
        }
        components.push(...(await blockDevices()), ...networkInterfaces());
        return { components };
      },
    },
  };
}

/** Block devices the kernel lists (Linux), labelled with their model when it says one. */
async function blockDevices(): Promise<Component[]> {
  const names = await fs.promises.readdir('/sys/block').catch(() => [] as string[]);
  const devices: Component[] = [];
  for (const name of names) {
    if (/^(loop|ram|zram)\d+$/.test(name)) continue; // the kernel's own, not attached devices
    const model = await fs.promises.readFile(path.join('/sys/block', name, 'device/model'), 'utf8').catch(() => '');
    devices.push({ id: `block:${name}`, label: model.trim() || name, type: 'block-device' });
  }
  return devices;
}

function networkInterfaces(): Component[] {
  return Object.keys(os.networkInterfaces())
    .filter((name) => name !== 'lo')
    .map((name) => ({ id: `net:${name}`, label: name, type: 'network-interface' }));
}
