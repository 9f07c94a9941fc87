// The console tour (tests/browser/console_scenario.py drives it): a solver takes a dispute,
// talks with both parties and settles; an operator visits every page. Each live update is
// awaited without a reload. Steps that need the world to move are asked for on stdout
// ({"step": name}) and answered on stdin; the last stdout line is what was observed.
// Env: BASE_URL, PASSWORD, DISPUTE_ID, ORDER_ID, SHOTS, CHROMIUM, TEXTS.
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const env = process.env;
const base = env.BASE_URL;
const texts = JSON.parse(env.TEXTS);
const disputeId = env.DISPUTE_ID;
const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];
const seen = { external: [], pages: {} };
const lines = createInterface({ input: process.stdin });
const answers = lines[Symbol.asyncIterator]();

const mark = (what) => console.error(`${new Date().toISOString()} ${what}`);

async function step(name) {
  mark(`step ${name}`);
  console.log(JSON.stringify({ step: name }));
  const { value } = await answers.next();
  return JSON.parse(value);
}

const browser = await chromium.launch({ executablePath: env.CHROMIUM || "/usr/bin/chromium", args: FLAGS });
try {
  // A browser context that records every request leaving the node.
  const newContext = async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    context.setDefaultTimeout(30000);
    context.on("request", (request) => {
      const url = request.url();
      if (!url.startsWith(base) && !url.startsWith("data:") && !url.startsWith(base.replace("http", "ws"))) {
        seen.external.push(url);
      }
    });
    return context;
  };
  const context = await newContext();
  const shot = (page, name) => mark(`shot ${name}`) || page.screenshot({ path: `${env.SHOTS}/${name}.png`, fullPage: true });
  // Nothing wider than the window, and no table clipped inside its scrolling box.
  const fits = (page) => page.evaluate(() => document.documentElement.scrollWidth <= 1280 &&
    [...document.querySelectorAll(".results, .module")].every((el) => el.scrollWidth <= el.clientWidth + 1));
  const login = async (page, user, next) => {
    await page.goto(`${base}/admin/login/?next=${next}`);
    await page.fill("#id_username", user);
    await page.fill("#id_password", env.PASSWORD);
    await Promise.all([page.waitForURL(`**${next}`), page.click("input[type=submit]")]);
  };
  const live = (page) => page.waitForSelector('body[data-live-connected="true"]');

  // --- the solver ----------------------------------------------------------------------
  const page = await context.newPage();
  await login(page, "solver", "/admin/disputes/dispute/");
  await live(page);
  seen.queue_counters = (await page.textContent("#dispute-counters")).replace(/\s+/g, " ").trim();
  seen.pages.disputes = await fits(page);
  await shot(page, "02-dispute-queue");

  await Promise.all([page.waitForURL(`**/${disputeId}/change/`), page.click(`a[href*="${disputeId}/change/"]`)]);
  seen.before_take = {
    chat: (await page.textContent("#chat-why-not")).trim(),
    escrow: (await page.textContent("#escrow-expiry")).trim(),
    guardian_class: await page.getAttribute("#guardian-deadline", "class"),
    parties: (await page.textContent("#dispute-parties")).replace(/\s+/g, " ").trim(),
  };
  seen.pages.dispute = await fits(page);
  await shot(page, "03-dispute-before-take");
  // Two more tabs watch the take happen: the queue's counters and the dispute page's notice.
  const queueTab = await context.newPage();
  await queueTab.goto(`${base}/admin/disputes/dispute/`);
  await live(queueTab);
  const disputeTab = await context.newPage();
  await disputeTab.goto(`${base}/admin/disputes/dispute/${disputeId}/change/`);
  await live(disputeTab);
  await page.click("#action-take");
  seen.take_confirmation = (await page.textContent("ul.movements")).trim();
  await Promise.all([page.waitForURL(`**/${disputeId}/change/`), page.click("#confirm")]);
  seen.take_hidden = (await page.locator("#action-take").count()) === 0;
  await queueTab.waitForFunction(() => document.querySelector("#count-in-progress")?.textContent.trim() === "1");
  seen.queue_live = (await queueTab.textContent("#dispute-counters")).replace(/\s+/g, " ").trim();
  await disputeTab.waitForSelector("#dispute-live-banner:not([hidden])");
  seen.dispute_notice = (await disputeTab.textContent("#dispute-live-banner")).replace(/\s+/g, " ").trim();
  await queueTab.close();
  await disputeTab.close();
  const announced = await step("taken");
  seen.announced = announced.announced;

  await live(page);
  await page.fill("#chat-text", texts.buyer_hello);
  await page.click("#chat-send");
  await page.waitForSelector('#chat-buyer .msg[data-direction="out"]');
  seen.first_state = await page.getAttribute('#chat-buyer .msg[data-direction="out"]', "data-state");
  await step("buyer-answers");
  await page.waitForFunction((text) => [...document.querySelectorAll('#chat-buyer .msg[data-direction="in"] .text')]
    .some((el) => el.textContent === text), texts.buyer_reply);
  await page.waitForSelector('#chat-buyer .msg[data-direction="out"][data-state="accepted"]');
  seen.buyer_chat = await page.$$eval("#chat-buyer .msg", (els) => els.map((el) => ({
    direction: el.dataset.direction, state: el.dataset.state, text: el.querySelector(".text").textContent,
    meta: el.querySelector(".meta").textContent })));
  await shot(page, "04-dispute-chat-buyer");

  await page.click("#tab-seller");
  await step("seller-writes");
  await page.waitForFunction(() => document.querySelector("#chat-seller img.attachment")?.naturalWidth === 48);
  seen.seller_text = await page.$$eval('#chat-seller .msg[data-direction="in"] .text', (els) => els.map((el) => el.textContent));
  await page.fill("#chat-text", texts.seller_thanks);
  await page.click("#chat-send");
  await step("seller-thanked");
  await page.waitForSelector('#chat-seller .msg[data-direction="out"][data-state="accepted"]');
  seen.attachment_href = await page.getAttribute("#chat-seller a.attachment-link", "href");
  await shot(page, "05-dispute-chat-seller");

  await page.click("#action-settle");
  seen.settle_confirmation = (await page.textContent("ul.movements")).trim();
  await shot(page, "06-confirm-settle");
  await Promise.all([page.waitForURL(`**/${disputeId}/change/`), page.click("#confirm")]);
  seen.after_settle = (await page.textContent("ul.messagelist")).trim();
  await shot(page, "07-dispute-settled");

  await page.goto(`${base}/console/key/`);
  seen.key_holder = (await page.textContent("#key-holder")).trim();
  await shot(page, "08-solver-key");
  const forbidden = await page.goto(`${base}/operator/`);
  seen.forbidden = { status: forbidden.status(), title: await page.title() };
  await shot(page, "09-forbidden");
  await page.close();

  // --- the operator -----------------------------------------------------------------------
  const operator = await newContext();
  const op = await operator.newPage();
  await op.goto(`${base}/`);
  seen.landing = (await op.textContent("#node-facts")).replace(/\s+/g, " ").trim();
  await shot(op, "01-landing");
  await login(op, "operator", "/admin/");
  seen.index_sections = await op.$$eval("#content-main caption", (els) => els.map((el) => el.textContent.trim()));
  await shot(op, "10-admin-index");

  await op.goto(`${base}/admin/orders/order/`);
  await live(op);
  const rows = await op.locator("#result_list tbody tr").count();
  const side = await step("new-order");
  await op.waitForFunction((n) => document.querySelectorAll("#result_list tbody tr").length === n + 1, rows);
  seen.orders_list_live = (await op.locator(`#result_list [data-copy="${side.order_id}"]`).count()) === 1;
  seen.pages.orders = await fits(op);
  await shot(op, "11-orders");

  await op.goto(`${base}/admin/orders/order/${side.order_id}/change/`);
  await live(op);
  seen.order_page_before = (await op.textContent("#order-status")).trim();
  seen.order_page_save_buttons = await op.locator('input[type="submit"][name="_save"]').count();
  await step("take-side-order");
  await op.waitForFunction(() => document.querySelector("#order-status").textContent.trim() !== "pending");
  seen.order_page_after = (await op.textContent("#order-status")).trim();
  seen.order_groups = await op.$$eval("#content-main h2", (els) => els.map((el) => el.textContent.trim()));
  await shot(op, "12-order");

  await op.goto(`${base}/admin/orders/order/${env.ORDER_ID}/change/`);
  seen.dispute_link = (await op.locator(`a[href*="/admin/disputes/dispute/${disputeId}/change/"]`).count()) > 0;
  await shot(op, "13-order-disputed");

  await op.goto(`${base}/operator/`);
  await live(op);
  const before = await op.textContent("#orders-by-status");
  await step("cancel-side-order");
  await op.waitForFunction((old) => document.querySelector("#orders-by-status").textContent !== old, before);
  seen.dashboard_live = true;
  seen.dashboard = {
    escrow: (await op.textContent("#fig-escrow")).trim(),
    fees: (await op.textContent("#fig-fees")).trim(),
    charts: await op.locator("svg.op-chart").count(),
  };
  seen.pages.dashboard = await fits(op);
  await shot(op, "14-dashboard");

  await op.goto(`${base}/admin/disputes/dispute/${disputeId}/change/`);
  seen.operator_reads_chat = await op.locator("#chat-buyer .msg").count();
  await shot(op, "15-dispute-operator");
  for (const [name, path] of [["16-traders", "/admin/orders/trader/"], ["17-settings", "/operator/settings/"],
    ["18-outbox", "/admin/nostrbridge/outboundmessage/"], ["19-relays", "/admin/nostrbridge/relayhealth/"]]) {
    await op.goto(`${base}${path}`);
    seen.pages[name] = await fits(op);
    await shot(op, name);
  }
  await op.goto(`${base}/api/docs`);
  await op.waitForSelector(".swagger-ui .info .title");
  seen.api_docs = (await op.textContent(".swagger-ui .info .title")).trim();
  await shot(op, "20-api-docs");
  const missing = await op.goto(`${base}/admin/orders/order/00000000-0000-0000-0000-000000000000/change/`);
  const notFound = await op.goto(`${base}/no/such/page/`);
  seen.not_found = { status: notFound.status(), title: await op.title(), admin_missing: missing.status() };
  await shot(op, "21-not-found");
} finally {
  await browser.close();
  lines.close();
}
console.log(JSON.stringify(seen));
