import { kvContract } from './kv-contract.js';
import { peerGate } from '../testkit/index.js';

kvContract('mosquitto', { skip: peerGate('mosquitto', 'the key-value store on Mosquitto').skip });
