/**
 * Auto-discovery (docs/bridges.md, "xPL"; Domogik's wish): "when a plugin detects a device not known for its technology, it
 * sends an xPL message (with techno/address/type/reference) … so the UIs can offer to create it".
 * Each xPL message names up to two kinds of device: the application that sent it (its `source`)
 * and the devices its body addresses (`device=`, `address=`; a comma list names several). Each is
 * reported once, the first time it is seen. Pure: no I/O; memory bounded (the oldest are forgotten
 * first, and would be reported again if seen again).
 */
import { bodyValue, type XplMessage } from './message.js';

export interface DiscoveredDevice {
  /** `xpl` for an xPL application, else the schema class that addressed it (`x10`, `sensor`, `control`…). */
  technology: string;
  /** The xPL source of an application; the body's address of a device (`a1`, `28.3fa2b5000000`). */
  address: string;
  /** The body's `type` (`temp`, `humidity`, `output`…) when it has one; `application` for an application; else the schema type (`basic`). */
  type: string;
  /** What made it: `vendor-device` of the application that sent the message. */
  reference: string;
  /** The xPL source that reported it, and the message's schema. */
  source: string;
  schema: string;
}

/** Body fields that carry a device's address in the common schemas (x10.basic, sensor.basic, control.basic, security.*). */
const ADDRESS_KEYS = ['device', 'address'];

export class Discovery {
  private readonly seen = new Map<string, true>();

  constructor(readonly maxDevices = 10_000) {}

  get size(): number {
    return this.seen.size;
  }

  /** The devices of `message` not seen before (and now remembered). */
  observe(message: XplMessage): DiscoveredDevice[] {
    const [schemaClass = '', schemaType = ''] = message.schema.toLowerCase().split('.');
    const reference = message.source.slice(0, message.source.indexOf('.')).toLowerCase();
    const candidates: DiscoveredDevice[] = [{ technology: 'xpl', address: message.source.toLowerCase(), type: 'application', reference, source: message.source, schema: message.schema }];
    // A heartbeat or config message names only its application.
    if (schemaClass !== 'hbeat' && schemaClass !== 'config') {
      const type = bodyValue(message, 'type') ?? schemaType;
      for (const key of ADDRESS_KEYS) {
        for (const address of (bodyValue(message, key) ?? '').split(',')) {
          const trimmed = address.trim().toLowerCase();
          if (trimmed) candidates.push({ technology: schemaClass, address: trimmed, type, reference, source: message.source, schema: message.schema });
        }
      }
    }
    return candidates.filter((device) => this.remember(`${device.technology}|${device.address}|${device.technology === 'xpl' ? '' : message.source.toLowerCase()}`));
  }

  /** True when `key` is new. */
  private remember(key: string): boolean {
    if (this.seen.has(key)) return false;
    if (this.seen.size >= this.maxDevices) this.seen.delete(this.seen.keys().next().value!);
    this.seen.set(key, true);
    return true;
  }
}
