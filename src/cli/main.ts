#!/usr/bin/env node
import { main } from './program.js';
import { installProcessHandlers } from '../util/interrupt.js';

installProcessHandlers();
main(process.argv).then((code) => {
  process.exitCode = code;
});
