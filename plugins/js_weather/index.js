// js_weather: current weather for a city, for a voice assistant ("what's the
// weather like in Utrecht?"). A Switchboard component plugin in plain
// JavaScript, built with componentize-js against the WIT world `tool-plugin`
// (plugin-sdk/wit/world.wit); see docs/plugins/javascript.md.
//
// It speaks Open-Meteo's public API with the ordinary `fetch`:
//   GET {geocoding_url}/v1/search?name=CITY&count=1   -> {"results": [{name, country, latitude, longitude, timezone}]}
//   GET {forecast_url}/v1/forecast?latitude=..&longitude=..&current=...  -> {"current": {...}, "current_units": {...}}
// Both base URLs come from the manifest's [config] (wasi:config), and both
// hosts must be granted in its [http] allowed_hosts: see plugins/js_weather.toml.

import { get as configGet } from 'wasi:config/store@0.2.0-rc.1';
import { log } from 'wasi:logging/logging@0.1.0-draft';

const DEFAULTS = {
  geocoding_url: 'https://geocoding-api.open-meteo.com',
  forecast_url: 'https://api.open-meteo.com',
};

// WMO weather interpretation codes, as Open-Meteo reports them, in words a
// voice can say.
const CONDITIONS = {
  0: 'clear sky', 1: 'mainly clear', 2: 'partly cloudy', 3: 'overcast',
  45: 'fog', 48: 'freezing fog',
  51: 'light drizzle', 53: 'drizzle', 55: 'heavy drizzle', 56: 'freezing drizzle', 57: 'freezing drizzle',
  61: 'light rain', 63: 'rain', 65: 'heavy rain', 66: 'freezing rain', 67: 'freezing rain',
  71: 'light snow', 73: 'snow', 75: 'heavy snow', 77: 'snow grains',
  80: 'light showers', 81: 'showers', 82: 'violent showers', 85: 'snow showers', 86: 'heavy snow showers',
  95: 'a thunderstorm', 96: 'a thunderstorm with hail', 99: 'a thunderstorm with heavy hail',
};

const TOOLS = [
  {
    name: 'get_weather',
    description: 'Current weather (temperature, conditions, wind) for a city, with a sentence ready to say to the caller.',
    parametersSchema: JSON.stringify({
      type: 'object',
      properties: {
        city: { type: 'string', description: 'City name, e.g. "Amsterdam"' },
        units: { type: 'string', enum: ['celsius', 'fahrenheit'], description: 'Temperature unit (default celsius)' },
      },
      required: ['city'],
      additionalProperties: false,
    }),
  },
];

// The tool-error variant of the WIT world: throwing one of these makes the
// call return `err(...)`.
const invalidArguments = (message) => ({ tag: 'invalid-arguments', val: message });
const notFound = (message) => ({ tag: 'not-found', val: message });
const failed = (message) => ({ tag: 'failed', val: message });

// A value from the manifest's [config], or its default.
function config(key) {
  let value;
  try {
    value = configGet(key);
  } catch (e) {
    throw failed(`configuration is unavailable: ${e?.payload?.val ?? e}`);
  }
  return (value ?? DEFAULTS[key]).replace(/\/+$/, '');
}

async function getJson(url, what) {
  let response;
  try {
    response = await fetch(url, { headers: { accept: 'application/json' } });
  } catch (e) {
    // A host missing from allowed_hosts, an unreachable service or a
    // timeout all end up here.
    log('warn', 'js_weather', `${what} request failed: ${e}`);
    throw failed(`the weather service cannot be reached right now (${what}: ${e?.message ?? e})`);
  }
  if (!response.ok) {
    throw failed(`the weather service answered ${response.status} to the ${what} request`);
  }
  return response.json();
}

async function getWeather(args) {
  const city = typeof args.city === 'string' ? args.city.trim() : '';
  if (!city) throw invalidArguments('"city" must be a non-empty string');
  const units = args.units ?? 'celsius';
  if (units !== 'celsius' && units !== 'fahrenheit') {
    throw invalidArguments('"units" must be "celsius" or "fahrenheit"');
  }

  const geocoding = `${config('geocoding_url')}/v1/search?name=${encodeURIComponent(city)}&count=1&language=en&format=json`;
  const places = await getJson(geocoding, 'geocoding');
  const place = places?.results?.[0];
  if (!place) throw notFound(`no place called "${city}" was found`);

  const forecast = `${config('forecast_url')}/v1/forecast?latitude=${place.latitude}&longitude=${place.longitude}`
    + '&current=temperature_2m,apparent_temperature,weather_code,wind_speed_10m'
    + `&temperature_unit=${units}&wind_speed_unit=kmh&timezone=auto`;
  const weather = await getJson(forecast, 'forecast');
  const now = weather?.current;
  if (!now || typeof now.temperature_2m !== 'number') {
    throw failed('the weather service gave no current conditions');
  }

  const conditions = CONDITIONS[now.weather_code] ?? 'unknown conditions';
  const temperature = Math.round(now.temperature_2m);
  const unitWord = units === 'fahrenheit' ? 'degrees Fahrenheit' : 'degrees';
  log('info', 'js_weather', `weather for ${place.name}: ${temperature} ${units}, code ${now.weather_code}`);
  return {
    city: place.name,
    country: place.country ?? null,
    temperature: now.temperature_2m,
    feels_like: now.apparent_temperature ?? null,
    units,
    conditions,
    wind_kmh: now.wind_speed_10m ?? null,
    observed_at: now.time ?? null,
    summary: `It is ${temperature} ${unitWord} with ${conditions} in ${place.name} right now.`,
  };
}

// The `tools` interface of the world: `list` and `call`.
export const tools = {
  list() {
    return TOOLS;
  },

  // `call` may be async: componentize-js runs the event loop until the
  // promise settles. `context` is the call-context record (callId,
  // toolCallId, customerNumber, ..., deadlineMs).
  async call(name, argumentsJson, context) {
    let args;
    try {
      args = JSON.parse(argumentsJson);
    } catch (e) {
      throw invalidArguments(`arguments are not JSON: ${e.message}`);
    }
    try {
      switch (name) {
        case 'get_weather':
          return JSON.stringify(await getWeather(args ?? {}));
        default:
          throw failed(`unknown tool: ${name}`);
      }
    } catch (e) {
      // Anything thrown that is not a tool-error would trap, and the LLM
      // would only hear "the tool crashed"; say what went wrong instead.
      if (e && typeof e === 'object' && typeof e.tag === 'string') throw e;
      log('error', 'js_weather', `unexpected error: ${e?.stack ?? e}`);
      throw failed(`the weather lookup failed unexpectedly: ${e?.message ?? e}`);
    }
  },
};
