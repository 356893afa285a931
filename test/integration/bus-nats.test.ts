import { busContract } from './bus-contract.js';
import { peerGate } from '../testkit/index.js';

busContract('nats', { skip: peerGate('nats-server', 'the bus contract on the NATS MQTT gateway').skip });
