import { busContract } from './bus-contract.js';

busContract('aedes', { skip: false });
