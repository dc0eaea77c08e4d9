import { cliSuite, TARGETS } from "../../../test/support/cli-scenario.js";

cliSuite(TARGETS.pglite, { portal: true, exitCodes: false });
