import { routerContract } from './router-contract.js';
import { peerGate } from '../testkit/index.js';

routerContract('mosquitto', { skip: peerGate('mosquitto', 'the router on Mosquitto').skip });
