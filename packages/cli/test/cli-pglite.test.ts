import { cliSuite, TARGETS } from "./cli-scenario.js";

cliSuite(TARGETS.pglite, { portal: true, exitCodes: false });
