// A solver logs in to the console, takes a dispute and settles it to the buyer.
// Driven by tests/browser/test_solver_console.py; prints one JSON line of observations.
// Env: BASE_URL, SOLVER_USER, SOLVER_PASSWORD, DISPUTE_ID, ARTIFACTS, CHROMIUM.
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const env = process.env;
const base = env.BASE_URL;
const shots = env.ARTIFACTS;
const disputeId = env.DISPUTE_ID;
const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];
const seen = {};

mkdirSync(shots, { recursive: true });
const browser = await chromium.launch({ executablePath: env.CHROMIUM || "/usr/bin/chromium", args: FLAGS });
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(15000);
  const page = await context.newPage();
  const shot = (page, name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });

  // Log in, land on the queue.
  await page.goto(`${base}/admin/login/?next=/admin/disputes/dispute/`);
  await page.fill("#id_username", env.SOLVER_USER);
  await page.fill("#id_password", env.SOLVER_PASSWORD);
  await Promise.all([page.waitForURL("**/admin/disputes/dispute/"), page.click("input[type=submit]")]);
  await page.waitForSelector(`[data-dispute-id="${disputeId}"]`);
  seen.stylesheet = await page.evaluate(() => getComputedStyle(document.body).fontFamily !== "");
  await shot(page, "01-queue");

  // A second tab keeps the queue open: the take must appear there without a reload.
  const queue = await context.newPage();
  await queue.goto(`${base}/admin/disputes/dispute/`);
  await queue.waitForSelector('body[data-live-connected="true"]');
  seen.live_connected = true;

  // The dispute page: parties, amounts, invoice state.
  await Promise.all([page.waitForURL(`**/${disputeId}/change/`), page.click(`a[href*="${disputeId}"]`)]);
  seen.invoice_state = (await page.textContent("#invoice-state")).trim();
  await shot(page, "02-dispute");

  // Take: confirmation page first, then confirm.
  await page.click("#action-take");
  seen.take_confirmation = (await page.textContent("ul.movements")).trim();
  await shot(page, "03-confirm-take");
  await Promise.all([page.waitForURL(`**/${disputeId}/change/`), page.click("#confirm")]);
  seen.after_take = (await page.textContent("ul.messagelist")).trim();

  await queue.waitForFunction(
    (id) => document.querySelector(`[data-dispute-id="${id}"]`)?.textContent === "in-progress",
    disputeId,
  );
  seen.queue_live_status = await queue.textContent(`[data-dispute-id="${disputeId}"]`);
  await shot(queue, "04-queue-live-update");

  // Settle to the buyer: the confirmation states the sats and the recipient.
  await page.click("#action-settle");
  seen.settle_confirmation = (await page.textContent("ul.movements")).trim();
  await shot(page, "05-confirm-settle");
  await Promise.all([page.waitForURL(`**/${disputeId}/change/`), page.click("#confirm")]);
  seen.after_settle = (await page.textContent("ul.messagelist")).trim();
  seen.order_status = (await page.textContent("#order-status")).trim();
  seen.invoice_state_after = (await page.textContent("#invoice-state")).trim();
  await shot(page, "06-settled");
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
