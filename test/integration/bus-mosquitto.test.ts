import { busContract } from './bus-contract.js';
import { peerGate } from '../testkit/index.js';

busContract('mosquitto', { skip: peerGate('mosquitto', 'the bus contract on Mosquitto').skip });
