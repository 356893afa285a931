import { kvContract } from './kv-contract.js';

kvContract('aedes', { skip: false });
