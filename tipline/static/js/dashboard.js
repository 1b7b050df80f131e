/* Staff dashboard: keep the life-safety banner and the queue current without a reload.
 *
 * Every 15 seconds the page asks the server for the newest tip id it may see and the
 * life-safety banner. The queue table is fetched again (as server-rendered HTML) only when
 * something changed. No third-party code; the polling stops while the tab is hidden. */
(function () {
  "use strict";
  var INTERVAL = 15000;
  var table = document.getElementById("queue-table");
  var banner = document.getElementById("lifesafety-banner");
  var live = document.getElementById("queue-live");
  var bannerUrl = banner ? banner.getAttribute("data-banner-url") : "";
  var stateUrl = table ? table.getAttribute("data-state-url") : bannerUrl;
  if (!stateUrl) { return; }

  function getJSON(url, done) {
    var xhr = new XMLHttpRequest();
    xhr.open("GET", url);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-Tipline-Poll", "1");  /* not a person: keeps no session alive */
    xhr.onload = function () {
      if (xhr.status === 401) { window.location.reload(); return; }
      if (xhr.status !== 200) { return; }
      try { done(JSON.parse(xhr.responseText)); } catch (e) { /* ignore a bad answer */ }
    };
    xhr.send();
  }

  function getHTML(url, done) {
    var xhr = new XMLHttpRequest();
    xhr.open("GET", url);
    xhr.setRequestHeader("X-Tipline-Poll", "1");
    xhr.onload = function () {
      if (xhr.status === 401) { window.location.reload(); return; }
      if (xhr.status === 200) { done(xhr.responseText); }
    };
    xhr.send();
  }

  function partialUrl() {
    var url = new URL(window.location.href);
    url.searchParams.set("partial", "1");
    return url.toString();
  }

  var baseTitle = document.title.replace(/^\(\d+ life-safety\) /, "");

  function updateBanner(html, count) {
    /* The tab title carries the count too, so a tab in the background still shows it. */
    document.title = count > 0 ? "(" + count + " life-safety) " + baseTitle : baseTitle;
    if (!banner) { return; }
    if (banner.innerHTML.trim() !== (html || "").trim()) { banner.innerHTML = html || ""; }
  }

  function tick() {
    if (document.hidden) { return; }
    getJSON(stateUrl, function (data) {
      updateBanner(data.banner_html, data.lifesafety || 0);
      if (!table) { return; }
      var latest = String(data.latest), total = String(data.total);
      /* A reporter's answer adds no tip: the count of tips with unread reporter messages
       * changes instead, and the row must be marked (and sorted up) without a reload. */
      var unread = String(data.unread || 0);
      if (latest === table.getAttribute("data-latest") && total === table.getAttribute("data-total") &&
          unread === (table.getAttribute("data-unread") || "0")) {
        return;
      }
      var added = parseInt(latest, 10) > parseInt(table.getAttribute("data-latest"), 10);
      getHTML(partialUrl(), function (html) {
        table.innerHTML = html;
        table.setAttribute("data-latest", latest);
        table.setAttribute("data-total", total);
        table.setAttribute("data-unread", unread);
        if (live) {
          live.textContent = added ? "New tips arrived. The queue has been updated." : "The queue has been updated.";
        }
      });
    });
  }

  /* The queue's filters are folded on a phone (tips first); a wide screen has room for them. */
  var filters = document.getElementById("queue-filters");
  if (filters && window.matchMedia && window.matchMedia("(min-width: 60.01rem)").matches) {
    filters.open = true;
  }

  window.setInterval(tick, INTERVAL);
  if (banner && banner.querySelector(".lifesafety")) { tick(); }
  document.addEventListener("visibilitychange", function () { if (!document.hidden) { tick(); } });
  window.tiplineDashboardTick = tick;  /* lets a test run a poll at once */
}());
