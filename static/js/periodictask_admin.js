/* Admin → Periodic tasks: under the crontab field, what the chosen schedule means
 * ("At 01 minutes past the hour"). Replaces django_celery_beat's inline script,
 * which the CSP blocks. The readings and the help text arrive as JSON blocks.
 */
(function () {
  "use strict";

  var $ = window.django && window.django.jQuery;
  var readings = document.getElementById("readable-crontabs");
  if (!$ || !readings) {
    return;
  }
  var readable = JSON.parse(readings.textContent);
  var help = JSON.parse(document.getElementById("crontab-help").textContent);

  $(".field-crontab_translation").hide();
  $(".field-crontab").on("change", function () {
    var reading = readable[$("#id_crontab").val()];
    var box = $(".field-crontab .help");
    box.text(help);
    if (reading) {
      box.append($("<br>"), document.createTextNode("Translation: " + reading));
    }
  });
})();
