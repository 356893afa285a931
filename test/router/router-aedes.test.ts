import { routerContract } from './router-contract.js';

routerContract('aedes', { skip: false });
